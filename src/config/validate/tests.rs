//! Whole-file tests: defaults, a full example, aggregation and error paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{
    Backend, CertPair, Config, ConfigError, ConfigErrors, HostPattern, LogFormat, OriginPattern,
    OriginPolicy, RemoteBackend, WsSettings,
};

const MINIMAL: &str = r#"
[[listeners]]
bind = "127.0.0.1:8080"

[[routes]]
backends = ["builtin:echo"]
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/wsgate"))
}

/// The error lines of `text`, which must fail.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// A minimal valid file with `route_keys` added to its only route.
fn route_with(route_keys: &str) -> String {
    format!("{MINIMAL}{route_keys}\n")
}

#[test]
fn defaults_applied() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.server.drain_spread, Duration::ZERO);
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert!(config.admin.is_none());
    assert!(config.listeners[0].tls.is_none());
    let route = &config.routes[0];
    assert_eq!(route.index, 0);
    assert_eq!(route.name, "*/");
    assert_eq!(route.host, HostPattern::Any);
    assert_eq!(route.path, "/");
    assert_eq!(route.backends, vec![Backend::BuiltinEcho]);
    assert_eq!(route.origins, OriginPolicy::SameOrigin);
    assert!(route.allow_missing_origin);
    assert!(route.subprotocols.is_empty());
    assert!(!route.fallback);
    assert_eq!(
        route.ws,
        WsSettings {
            max_message_size: 1 << 20,
            validate_utf8: true,
            idle_timeout: Duration::from_secs(600),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(20),
        }
    );
    assert_eq!(route.connect_timeout, Duration::from_secs(5));
    assert_eq!(route.response_timeout, Duration::from_secs(30));
}

const FULL: &str = r#"
[server]
shutdown_grace = "45s"
header_read_timeout = "5s"

[[listeners]]
bind = "0.0.0.0:8443"
[listeners.tls]
certs = [
  { cert = "certs/site.pem", key = "certs/site.key" },
  { cert = "/abs/other.pem", key = "/abs/other.key" },
]

[[listeners]]
bind = "[::1]:8080"

[admin]
bind = "127.0.0.1:9090"

[[routes]]
name = "chat"
host = "Chat.Example.com"
path = "/chat/"
backends = ["ws://10.0.0.5:9000", "wss://10.0.0.6:9443", "builtin:echo"]
origins = ["https://chat.example.com", "https://*.example.com"]
allow_missing_origin = false
subprotocols = ["chat.v2", "chat.v1"]
fallback = true
max_message_size = "64KiB"
validate_utf8 = false
idle_timeout = "1m30s"
ping_interval = "15s"
pong_timeout = "10s"
connect_timeout = "2s"
response_timeout = "250ms"

[[routes]]
host = "*.example.com"
backends = ["http://[::1]"]
origins = ["*"]
max_message_size = 4096
"#;

#[test]
fn full_example() {
    let config = parse(FULL).unwrap();
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(45));
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(5));

    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].bind, "0.0.0.0:8443".parse().unwrap());
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        tls.certs,
        vec![
            CertPair {
                cert: PathBuf::from("/etc/wsgate/certs/site.pem"),
                key: PathBuf::from("/etc/wsgate/certs/site.key"),
            },
            CertPair {
                cert: PathBuf::from("/abs/other.pem"),
                key: PathBuf::from("/abs/other.key")
            },
        ]
    );
    assert_eq!(config.listeners[1].bind, "[::1]:8080".parse().unwrap());
    assert_eq!(
        config.admin.unwrap().bind,
        "127.0.0.1:9090".parse().unwrap()
    );

    let chat = &config.routes[0];
    assert_eq!((chat.index, chat.name.as_str()), (0, "chat"));
    assert_eq!(chat.host, HostPattern::Exact("chat.example.com".into()));
    assert_eq!(chat.path, "/chat");
    assert_eq!(
        chat.backends,
        vec![
            Backend::Remote(RemoteBackend {
                tls: false,
                host: "10.0.0.5".into(),
                port: 9000,
                url: "ws://10.0.0.5:9000".into(),
            }),
            Backend::Remote(RemoteBackend {
                tls: true,
                host: "10.0.0.6".into(),
                port: 9443,
                url: "wss://10.0.0.6:9443".into(),
            }),
            Backend::BuiltinEcho,
        ]
    );
    assert_eq!(
        chat.origins,
        OriginPolicy::List(vec![
            OriginPattern {
                scheme: "https".into(),
                host: "chat.example.com".into(),
                wildcard: false,
                port: 443,
            },
            OriginPattern {
                scheme: "https".into(),
                host: "example.com".into(),
                wildcard: true,
                port: 443
            },
        ])
    );
    assert!(!chat.allow_missing_origin);
    assert_eq!(chat.subprotocols, vec!["chat.v2", "chat.v1"]);
    assert!(chat.fallback);
    assert_eq!(
        chat.ws,
        WsSettings {
            max_message_size: 64 * 1024,
            validate_utf8: false,
            idle_timeout: Duration::from_secs(90),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
        }
    );
    assert_eq!(chat.connect_timeout, Duration::from_secs(2));
    assert_eq!(chat.response_timeout, Duration::from_millis(250));

    let wild = &config.routes[1];
    assert_eq!((wild.index, wild.name.as_str()), (1, "*.example.com/"));
    assert_eq!(wild.host, HostPattern::Suffix(".example.com".into()));
    assert_eq!(wild.origins, OriginPolicy::Any);
    assert_eq!(wild.ws.max_message_size, 4096);
    assert!(wild.ws.validate_utf8, "on by default");
    assert_eq!(
        wild.backends,
        vec![Backend::Remote(RemoteBackend {
            tls: false,
            host: "::1".into(),
            port: 80,
            url: "http://[::1]".into(),
        })]
    );
}

#[test]
fn all_errors_reported_at_once() {
    let text = r#"
[[listeners]]
bind = "x"

[[routes]]
backends = ["ws://a"]

[[routes]]
path = "/a"
backends = ["ftp://10.0.0.5"]

[[routes]]
path = "/b"
backends = ["ws://b"]
origins = ["https://ok.example.com", "chat.example.com"]
"#;
    assert_eq!(
        errors(text),
        vec![
            r#"listeners[0].bind: invalid socket address "x" (expected ip:port, e.g. "0.0.0.0:8443")"#,
            r#"routes[1].backends[0]: unsupported scheme "ftp" (expected ws, wss, http, https or builtin:echo)"#,
            r#"routes[2].origins[1]: expected scheme://host[:port], got "chat.example.com""#,
        ]
    );
}

#[test]
fn file_level_rules() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["listeners: at least one", "routes: at least one"]),
        (
            "[[listeners]]\n[[routes]]\n",
            &["listeners[0].bind: required", "routes[0].backends: required"],
        ),
        (
            "[[listeners]]\nbind = \"0.0.0.0:1\"\n[listeners.tls]\ncerts = []\n[[routes]]\nbackends = []\n",
            &["listeners[0].tls.certs: at least one", "routes[0].backends: at least one"],
        ),
        (
            "[[listeners]]\nbind = \"0.0.0.0:1\"\n[[listeners]]\nbind = \"0.0.0.0:1\"\n\
             [admin]\nbind = \"0.0.0.0:1\"\n[[routes]]\nbackends = [\"builtin:echo\"]\n",
            &[
                "admin.bind: 0.0.0.0:1 is also a public listener",
                "listeners[1].bind: 0.0.0.0:1 is already bound by listeners[0]",
            ],
        ),
        (
            "[[listeners]]\nbind = \"0.0.0.0:1\"\n[listeners.tls]\ncerts = [{ cert = \"\", key = \"k\" }]\n\
             [[routes]]\nbackends = [\"builtin:echo\"]\n",
            &["listeners[0].tls.certs[0].cert: empty file path"],
        ),
        (
            "[server]\nshutdown_grace = \"soon\"\nheader_read_timeout = \"0s\"\n[admin]\nbind = \"localhost:9090\"\n",
            &[
                "server.shutdown_grace: invalid duration \"soon\"",
                "server.header_read_timeout: must be greater than zero",
                "admin.bind: invalid socket address \"localhost:9090\"",
            ],
        ),
    ];
    for (text, wants) in cases {
        let got = errors(text);
        for want in *wants {
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "{want:?} not in {got:#?}"
            );
        }
    }
}

#[test]
fn route_rules() {
    // (keys added to the minimal route, expected error prefix)
    let cases: &[(&str, &str)] = &[
        ("host = \"*\"", "routes[0].host: bare \"*\""),
        (
            "host = \"a.example.com:443\"",
            "routes[0].host: \"a.example.com:443\" has a port",
        ),
        (
            "host = \"a.*.com\"",
            "routes[0].host: \"a.*.com\": \"*\" is only allowed",
        ),
        ("path = \"chat\"", "routes[0].path: must start with \"/\""),
        ("name = \"\"", "routes[0].name: must not be empty"),
        ("origins = []", "routes[0].origins: empty list"),
        (
            "origins = [\"*\", \"https://a.com\"]",
            "routes[0].origins[0]: \"*\" must be the only entry",
        ),
        (
            "origins = [\"ws://a.com\"]",
            "routes[0].origins[0]: unsupported scheme \"ws\"",
        ),
        (
            "origins = [\"https://a.com/app\"]",
            "routes[0].origins[0]: an origin has no path",
        ),
        (
            "subprotocols = [\"a b\"]",
            "routes[0].subprotocols[0]: \"a b\" is not a valid token",
        ),
        (
            "subprotocols = [\"v1\", \"v2\", \"v1\"]",
            "routes[0].subprotocols[2]: duplicate \"v1\" (also routes[0].subprotocols[0])",
        ),
        (
            "max_message_size = \"0\"",
            "routes[0].max_message_size: must be greater than zero",
        ),
        (
            "max_message_size = 0",
            "routes[0].max_message_size: must be greater than zero",
        ),
        (
            "max_message_size = -1",
            "routes[0].max_message_size: invalid size -1: negative",
        ),
        (
            "max_message_size = \"1.5MiB\"",
            "routes[0].max_message_size: invalid size \"1.5MiB\": fractions",
        ),
        (
            "idle_timeout = \"0s\"",
            "routes[0].idle_timeout: must be greater than zero",
        ),
        (
            "ping_interval = \"30\"",
            "routes[0].ping_interval: invalid duration \"30\": missing unit",
        ),
        (
            "pong_timeout = \"0ms\"",
            "routes[0].pong_timeout: must be greater than zero",
        ),
        (
            "connect_timeout = \"5 s\"",
            "routes[0].connect_timeout: invalid duration",
        ),
        (
            "response_timeout = \"0s\"",
            "routes[0].response_timeout: must be greater than zero",
        ),
    ];
    for (keys, want) in cases {
        let got = errors(&route_with(keys));
        assert_eq!(got.len(), 1, "{keys}: {got:#?}");
        assert!(
            got[0].starts_with(want),
            "{keys}: {:?} does not start with {want:?}",
            got[0]
        );
    }
}

#[test]
fn duplicate_routes_and_names() {
    let text = format!(
        "{MINIMAL}\
         [[routes]]\nbackends = [\"builtin:echo\"]\npath = \"/chat\"\nhost = \"a.com\"\n\
         [[routes]]\nbackends = [\"builtin:echo\"]\npath = \"/chat/\"\nhost = \"A.com\"\n\
         [[routes]]\nbackends = [\"builtin:echo\"]\nname = \"a.com/chat\"\npath = \"/other\"\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "routes[2]: same host and path (\"a.com/chat\") as routes[1]",
            "routes[3].name: \"a.com/chat\" is already the name of routes[1]",
        ]
    );
}

#[test]
fn unknown_keys_rejected_with_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[routes]]\norigin = [\"*\"]\n",
            "routes[1].origin",
            "unknown field `origin`",
        ),
        (
            "[[routes]]\nbackends = [\"builtin:echo\"]\nfallbak = true\n",
            "routes[1].fallbak",
            "unknown field `fallbak`; did you mean `fallback`? (line ",
        ),
        (
            "[server]\ngrace = \"1s\"\n",
            "server.grace",
            "unknown field `grace`",
        ),
        (
            "[metrics]\nbind = \"x\"\n",
            "metrics",
            "unknown field `metrics`",
        ),
        (
            "[admin]\nbind = \"127.0.0.1:1\"\nport = 1\n",
            "admin.port",
            "unknown field `port`",
        ),
    ];
    for (extra, path, message) in cases {
        let text = format!("{MINIMAL}{extra}");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].path, *path, "{err}");
        assert!(err.0[0].message.starts_with(message), "{err}");
        assert!(err.0[0].message.contains("(line "), "{err}");
    }
}

#[test]
fn toml_type_and_syntax_errors() {
    let err = parse(&route_with("fallback = \"yes\"")).unwrap_err();
    assert_eq!(err.0[0].path, "routes[0].fallback", "{err}");
    assert!(err.0[0].message.contains("invalid type"), "{err}");

    let err = parse("[[listeners]\n").unwrap_err();
    assert!(err.0[0].message.contains("line 1"), "{err}");
}

#[test]
fn display() {
    let errs = ConfigErrors(vec![
        ConfigError::new("routes[0].path", "must start with \"/\""),
        ConfigError::new("", "cannot read x"),
    ]);
    assert_eq!(
        errs.to_string(),
        "routes[0].path: must start with \"/\"\ncannot read x"
    );
}

#[test]
fn fallback_settings() {
    let config = parse(MINIMAL).unwrap();
    let defaults = &config.routes[0].fallback_settings;
    assert_eq!(defaults.poll_hold, Duration::from_secs(25));
    assert_eq!(defaults.session_timeout, Duration::from_secs(60));
    assert_eq!(defaults.buffer, 1 << 20);
    assert_eq!(defaults.sessions_per_client, 64);
    let keys = "fallback = true\nfallback_poll_hold = \"10s\"\nfallback_session_timeout = \"2m\"\n\
                fallback_buffer = \"64KiB\"\nfallback_sessions_per_client = 4";
    let route = &parse(&route_with(keys)).unwrap().routes[0];
    assert_eq!(route.fallback_settings.poll_hold, Duration::from_secs(10));
    assert_eq!(
        route.fallback_settings.session_timeout,
        Duration::from_secs(120)
    );
    assert_eq!(route.fallback_settings.buffer, 64 << 10);
    assert_eq!(route.fallback_settings.sessions_per_client, 4);
}

#[test]
fn fallback_settings_errors_have_paths() {
    let keys = "fallback_poll_hold = \"0s\"\nfallback_buffer = 0\nfallback_sessions_per_client = 0";
    let lines = errors(&route_with(keys));
    for key in [
        "fallback_poll_hold",
        "fallback_buffer",
        "fallback_sessions_per_client",
    ] {
        let path = format!("routes[0].{key}: ");
        assert!(
            lines.iter().any(|l| l.starts_with(&path)),
            "{key}: {lines:?}"
        );
    }
    let lines = errors(&route_with(
        "fallback_poll_hold = \"2m\"\nfallback_session_timeout = \"1m\"",
    ));
    assert!(
        lines[0].starts_with("routes[0].fallback_poll_hold: must be shorter"),
        "{lines:?}"
    );
    let lines = errors(&route_with("fallback_hold = \"1s\""));
    assert!(lines[0].contains("fallback_hold"), "{lines:?}");
}

#[test]
fn drain_and_log_keys() {
    let config = parse(&format!(
        "[server]\nshutdown_grace = \"10s\"\ndrain_spread = \"4s\"\nlog_format = \"json\"\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(config.server.drain_spread, Duration::from_secs(4));
    assert_eq!(config.server.log_format, LogFormat::Json);
    let got = errors(&format!(
        "[server]\nshutdown_grace = \"2s\"\ndrain_spread = \"3s\"\nlog_format = \"xml\"\n{MINIMAL}"
    ));
    assert!(
        got[0].starts_with("server.log_format: \"xml\" is not a log format"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("server.drain_spread: 3s is longer than server.shutdown_grace"),
        "{got:?}"
    );
}
