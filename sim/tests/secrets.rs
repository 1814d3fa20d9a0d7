//! A password in a backend URL never reaches any output: not the four report
//! files, not stdout, not stderr, not a connection error. Runs `cache-sim`
//! against a real `redis-server` that requires a password (an ACL user).

use std::path::Path;
use std::process::{Command, Output};

use cache_testkit::redis::{command, RedisServer};

const PASSWORD: &str = "Zq7-pw-9f3Kx";

fn cache_sim(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cache-sim"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run cache-sim")
}

/// Every file under `dir`, read as text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
    }
    out
}

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "{what} shows the password:\n{text}");
}

#[test]
fn a_password_never_appears_in_any_output() {
    let server = RedisServer::new().unwrap();
    let port = server.port();
    let acl = format!(">{PASSWORD}");
    command(port, &["ACL", "SETUSER", "app", "on", &acl, "~*", "+@all"]).unwrap();
    command(port, &["ACL", "SETUSER", "default", "off"]).unwrap();
    let url = format!("redis://app:{PASSWORD}@127.0.0.1:{port}/2");
    let shown = format!("redis://app:***@127.0.0.1:{port}/2");

    // On the command line, and from the environment.
    for (backend, env) in [
        (url.as_str(), vec![]),
        ("env:CACHE_SIM_TEST_URL", vec![("CACHE_SIM_TEST_URL", url.as_str())]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().to_str().unwrap();
        let out = cache_sim(
            &[
                "run",
                "--scenario",
                "stale-set-race",
                "--backend",
                backend,
                "--out",
                out_dir,
            ],
            &env,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run failed: {stderr}");
        assert_hidden("stdout", &stdout);
        assert_hidden("stderr", &stderr);
        // The run really used the server, and says which one.
        assert!(
            stdout.contains(&shown),
            "the table names the backend as {shown}:\n{stdout}"
        );
        let written = files(dir.path());
        assert_eq!(written.len(), 4, "four report files");
        for (name, body) in &written {
            assert_hidden(name, body);
            assert!(body.contains("app:***@"), "{name} names the redacted backend");
        }
    }

    // A refused login: the error names the backend, without its password.
    let wrong = format!("redis://app:{PASSWORD}x@127.0.0.1:{port}/2");
    let out = cache_sim(&["run", "--scenario", "stale-set-race", "--backend", &wrong], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("app:***@"), "the error names the backend: {stderr}");
    assert_hidden("stderr of a refused login", &stderr);
    assert_hidden("stdout of a refused login", &String::from_utf8_lossy(&out.stdout));

    // An unset variable is named, and is an error.
    let out = cache_sim(&["run", "--backend", "env:CACHE_SIM_UNSET_VARIABLE_X"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CACHE_SIM_UNSET_VARIABLE_X"));
}

#[test]
fn redaction_hides_user_info_and_query_passwords() {
    use sim::backends::redact_url;
    assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
    assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
    assert_eq!(redact_url("redis://token@h:1"), "redis://***@h:1");
    assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
    assert_eq!(
        redact_url("memcache://h:1?password=pw&x=1"),
        "memcache://h:1?password=***&x=1"
    );
    assert_eq!(
        redact_url("redis+cluster://u:p@a:1,b:2"),
        "redis+cluster://u:***@a:1,b:2"
    );
}
