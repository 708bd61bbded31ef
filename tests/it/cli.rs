//! The `wsgate` binary's command line: `check` verdicts and exit codes.

use std::process::Command;

fn wsgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn default_config_checks_clean() {
    let out = wsgate(&["check", "--config", "config/wsgate.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_prints_every_error_and_exits_64() {
    let dir = std::env::temp_dir().join(format!("wsgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[listeners]]\nbind = \"not-an-address\"\n\n[[routes]]\npath = \"/\"\nbackends = [\"ftp://x\"]\norigins = [\"chat.example.com\"]\n",
    )
    .unwrap();
    let out = wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in [
        "listeners[0].bind",
        "routes[0].backends[0]",
        "routes[0].origins[0]",
    ] {
        assert!(stderr.contains(path), "missing {path} in:\n{stderr}");
    }
    let run = wsgate(&["--config", path.to_str().unwrap()]);
    assert_eq!(
        run.status.code(),
        Some(64),
        "a bad config at start-up also exits 64"
    );
}

#[test]
fn missing_config_file_exits_64() {
    let out = wsgate(&["check", "--config", "/nonexistent/wsgate.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/wsgate.toml"));
}

/// The lines of `stderr` that report a config error (they start with a
/// key path such as `routes[0].backends[0]`).
fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("listeners[") || l.starts_with("routes["))
        .map(str::to_string)
        .collect()
}

#[test]
fn start_up_prints_the_same_errors_as_check() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let files = [
        // Value errors, found by the config parser.
        "[[listeners]]\nbind = \"not-an-address\"\n\n[[routes]]\nbackends = [\"ftp://x\"]\norigins = [\"x\"]\n".to_string(),
        // File errors, found by loading certificates and CA files.
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\ncerts = [{{ cert = {missing:?}, key = {missing:?} }}]\n\n\
             [[routes]]\nbackends = [\"wss://127.0.0.1:9\"]\nbackend_ca = {missing:?}\n"
        ),
    ];
    for (i, toml) in files.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let path = path.to_str().unwrap();
        let check = wsgate(&["check", "--config", path]);
        let run = wsgate(&["--config", path]);
        assert_eq!(check.status.code(), Some(64));
        assert_eq!(run.status.code(), Some(64));
        let (checked, started) = (error_lines(&check.stderr), error_lines(&run.stderr));
        assert!(checked.len() >= 2, "{checked:#?}");
        assert_eq!(checked, started, "start-up and check disagree on {toml}");
    }
}
