//! `muster agents add | list | remove`: adding an agent whose certificate
//! was made elsewhere (serial and expiry read from it, the CA and the name
//! checked), the list's header and JSON, and what remove confirms.

mod common;
use common::*;

#[test]
fn add_reads_the_certificate_and_checks_it() {
    let f = Fleet::new();
    let dir = f.path("made-elsewhere");
    let d = dir.display().to_string();
    let out = f.muster(&["ca", "issue-agent", "web7", "--addr", "127.0.0.1:7443", "--out", &d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let issued: serde_json::Value = serde_json::from_str(&stdout(&f.muster(&["agents", "show", "web7"]))).unwrap();
    assert!(f.muster(&["agents", "remove", "web7"]).status.success());

    let cert = dir.join("agent.crt").display().to_string();
    let out = f.muster(&["agents", "add", "web7", "--addr", "10.1.2.3:7443", "--cert", &cert, "--tags", "web,eu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("registered agent web7 at 10.1.2.3:7443 (serial "), "{}", stdout(&out));
    let added: serde_json::Value = serde_json::from_str(&stdout(&f.muster(&["agents", "show", "web7"]))).unwrap();
    assert_eq!(added["serial"], issued["serial"]);
    assert_eq!(added["not_after"], issued["not_after"]);
    assert_eq!(added["addr"], "10.1.2.3:7443");
    assert_eq!(added["tags"], serde_json::json!(["web", "eu"]));

    // Again: refused without --force, accepted with it.
    let again = f.muster(&["agents", "add", "web7", "--addr", "10.1.2.4:7443", "--cert", &cert]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("already exists") && stderr(&again).contains("--force"), "{}", stderr(&again));
    assert!(f
        .muster(&["agents", "add", "web7", "--addr", "10.1.2.4:7443", "--cert", &cert, "--force"])
        .status
        .success());

    // Under another name: the certificate names web7.
    let other = f.muster(&["agents", "add", "web8", "--addr", "10.1.2.5:7443", "--cert", &cert]);
    assert_eq!(code(&other), 1);
    assert!(stderr(&other).contains("is the certificate of \"web7\", not of \"web8\""), "{}", stderr(&other));

    // A certificate of another CA.
    let g = Fleet::new();
    let foreign = g.path("foreign");
    let fd = foreign.display().to_string();
    assert!(g.muster(&["ca", "issue-agent", "web9", "--addr", "127.0.0.1:7443", "--out", &fd]).status.success());
    let fc = foreign.join("agent.crt").display().to_string();
    let out = f.muster(&["agents", "add", "web9", "--addr", "10.1.2.6:7443", "--cert", &fc]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is not an agent certificate this dispatcher's CA signed"), "{}", stderr(&out));

    // Not a certificate at all, and a missing file.
    let junk = f.path("junk.crt");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = f.muster(&["agents", "add", "web9", "--addr", "10.1.2.6:7443", "--cert", &junk.display().to_string()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with("muster: "), "{}", stderr(&out));
    let out = f.muster(&["agents", "add", "web9", "--addr", "10.1.2.6:7443", "--cert", "/nonexistent/agent.crt"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("/nonexistent/agent.crt"), "{}", stderr(&out));
    let bad_addr = f.muster(&["agents", "add", "web7", "--addr", "nowhere", "--cert", &cert, "--force"]);
    assert!(stderr(&bad_addr).contains("must be HOST:PORT"), "{}", stderr(&bad_addr));
}

#[test]
fn list_has_a_header_and_json_and_remove_says_what_went() {
    let mut f = Fleet::new();
    let empty = f.muster(&["agents", "list"]);
    assert_eq!(stdout(&empty), "NAME  ADDRESS  TAGS  CERT EXPIRES\n");
    f.add("web1", &["web", "eu"], &[]);
    f.add("db10", &[], &[]);
    let out = stdout(&f.muster(&["agents", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAME  ADDRESS") && lines[0].ends_with("TAGS    CERT EXPIRES"), "{out}");
    let col = lines[0].find("ADDRESS").unwrap();
    assert!(lines.iter().all(|l| l.len() > col), "{out}");
    assert!(lines[1].starts_with("db10  ") && lines[1].contains("  -       "), "{out}");
    assert!(lines[2].starts_with("web1  ") && lines[2].contains("web,eu"), "{out}");
    assert_eq!(&lines[1][col..col + 8], &f.agents[1].addr.to_string()[..8], "columns align:\n{out}");

    for args in [&["agents", "list", "--output", "json"][..], &["agents", "list", "--json"][..]] {
        let v: serde_json::Value = serde_json::from_str(&stdout(&f.muster(args))).unwrap();
        let names: Vec<&str> = v.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["db10", "web1"]);
    }

    let out = f.muster(&["agents", "remove", "web1"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with(&format!("removed agent web1 (addr {}, serial ", f.agents[0].addr)),
        "{}",
        stdout(&out)
    );
    let again = f.muster(&["agents", "remove", "web1"]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("no agent \"web1\" in the registry"), "{}", stderr(&again));
}
