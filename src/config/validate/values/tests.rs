use super::*;

fn exact(h: &str) -> HostPattern {
    HostPattern::Exact(h.into())
}

#[test]
fn hosts() {
    let cases: &[(&str, Result<HostPattern, &str>)] = &[
        ("chat.example.com", Ok(exact("chat.example.com"))),
        ("Chat.Example.COM", Ok(exact("chat.example.com"))),
        ("localhost", Ok(exact("localhost"))),
        ("127.0.0.1", Ok(exact("127.0.0.1"))),
        (
            "*.example.com",
            Ok(HostPattern::Suffix(".example.com".into())),
        ),
        (
            "*.EXAMPLE.com",
            Ok(HostPattern::Suffix(".example.com".into())),
        ),
        ("*", Err("omit `host`")),
        ("", Err("omit `host`")),
        ("chat.example.com:8443", Err("port")),
        ("a..b", Err("empty label")),
        ("example.com.", Err("empty label")),
        ("*.", Err("empty host name")),
        ("a.*.com", Err("first label")),
        ("*chat.example.com", Err("first label")),
        ("*.*.example.com", Err("first label")),
        ("chat example.com", Err("invalid character")),
    ];
    for (text, want) in cases {
        match (host_pattern(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn paths() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("/", Ok("/")),
        ("/chat", Ok("/chat")),
        ("/chat/", Ok("/chat")),
        ("/a/b", Ok("/a/b")),
        ("chat", Err("must start with")),
        ("", Err("must start with")),
        ("/chat?x=1", Err("'?'")),
        ("/a b", Err("' '")),
        ("/a//b", Err("empty path segment")),
        ("//", Err("empty path segment")),
    ];
    for (text, want) in cases {
        match (route_path(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

fn origin(scheme: &str, host: &str, wildcard: bool, port: u16) -> OriginPattern {
    OriginPattern {
        scheme: scheme.into(),
        host: host.into(),
        wildcard,
        port,
    }
}

#[test]
fn origins() {
    let cases: &[(&str, Result<OriginPattern, &str>)] = &[
        (
            "https://chat.example.com",
            Ok(origin("https", "chat.example.com", false, 443)),
        ),
        (
            "http://chat.example.com",
            Ok(origin("http", "chat.example.com", false, 80)),
        ),
        (
            "HTTPS://Chat.Example.com:8443",
            Ok(origin("https", "chat.example.com", false, 8443)),
        ),
        (
            "https://chat.example.com/",
            Ok(origin("https", "chat.example.com", false, 443)),
        ),
        (
            "https://*.example.com",
            Ok(origin("https", "example.com", true, 443)),
        ),
        (
            "http://localhost:3000",
            Ok(origin("http", "localhost", false, 3000)),
        ),
        ("http://[::1]:3000", Ok(origin("http", "::1", false, 3000))),
        (
            "chat.example.com",
            Err("expected scheme://host[:port], got \"chat.example.com\""),
        ),
        ("ws://chat.example.com", Err("unsupported scheme \"ws\"")),
        ("https://chat.example.com/app", Err("no path")),
        ("https://chat.example.com?x", Err("no path")),
        ("https://u@chat.example.com", Err("user info")),
        ("https://a.*.example.com", Err("first label")),
        ("https://*", Err("first label")),
        ("https://", Err("missing host")),
        ("https://chat.example.com:0", Err("invalid port")),
        ("https://chat.example.com:99999", Err("invalid port")),
        ("https://chat.example.com:", Err("invalid port")),
        ("https://::1", Err("brackets")),
    ];
    for (text, want) in cases {
        match (origin_pattern(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

fn remote(tls: bool, host: &str, port: u16, url: &str) -> Backend {
    Backend::Remote(RemoteBackend {
        tls,
        host: host.into(),
        port,
        url: url.into(),
    })
}

#[test]
fn backends() {
    let cases: &[(&str, Result<Backend, &str>)] = &[
        ("builtin:echo", Ok(Backend::BuiltinEcho)),
        (
            "ws://10.0.0.5:9000",
            Ok(remote(false, "10.0.0.5", 9000, "ws://10.0.0.5:9000")),
        ),
        (
            "wss://10.0.0.6:9443",
            Ok(remote(true, "10.0.0.6", 9443, "wss://10.0.0.6:9443")),
        ),
        ("http://app", Ok(remote(false, "app", 80, "http://app"))),
        (
            "https://App.internal",
            Ok(remote(true, "app.internal", 443, "https://App.internal")),
        ),
        ("ws://app/", Ok(remote(false, "app", 80, "ws://app/"))),
        ("wss://app", Ok(remote(true, "app", 443, "wss://app"))),
        (
            "ws://[::1]:9000",
            Ok(remote(false, "::1", 9000, "ws://[::1]:9000")),
        ),
        ("ws://[::1]", Ok(remote(false, "::1", 80, "ws://[::1]"))),
        (
            "ftp://x",
            Err("unsupported scheme \"ftp\" (expected ws, wss, http, https or builtin:echo)"),
        ),
        ("builtin:mirror", Err("unknown builtin")),
        ("10.0.0.5:9000", Err("expected scheme://host[:port]")),
        ("ws://app/chat", Err("no path or query")),
        ("ws://app?x=1", Err("no path or query")),
        ("ws://u:p@app", Err("credentials")),
        ("ws://::1:9000", Err("brackets")),
        ("ws://[::1", Err("unclosed")),
        ("ws://[zz]:1", Err("invalid IPv6")),
        ("ws://[::1]x", Err("junk")),
        ("ws://app:http", Err("invalid port")),
        ("ws://app:+80", Err("invalid port")),
        ("ws://999.0.0.1", Err("invalid IPv4")),
        ("ws://:9000", Err("missing host")),
    ];
    for (text, want) in cases {
        match (backend(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn subprotocols() {
    for ok in [
        "chat.v2",
        "mqtt",
        "graphql-transport-ws",
        "a!#$%&'*+-.^_`|~z",
    ] {
        assert!(subprotocol(ok).is_ok(), "{ok}");
    }
    for bad in ["", "chat v2", "a,b", "a/b", "\"x\"", "é"] {
        assert!(subprotocol(bad).is_err(), "{bad}");
    }
}
