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
