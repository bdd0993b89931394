//! The bearer-token flow against a small fake registry + token server on 127.0.0.1:
//! challenge → token with basic credentials → retry; tokens cached per scope; a wrong
//! password is a 401 from the token server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_registry::http::{Endpoint, ReqBody};
use berth_registry::{Credentials, RegistryConfig};
use hyper::Method;

struct Fake {
    port: u16,
    token_requests: Arc<AtomicUsize>,
}

/// "me:pw" in base64.
const GOOD_BASIC: &str = "Basic bWU6cHc=";

fn start() -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let tr = token_requests.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h
                    .strip_prefix("authorization: ")
                    .or_else(|| h.strip_prefix("Authorization: "))
                {
                    auth = v.trim().to_string();
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, extra, body) = if path.starts_with("/token") {
                tr.fetch_add(1, Ordering::SeqCst);
                if auth == GOOD_BASIC && path.contains("service=fake") {
                    (
                        "200 OK",
                        String::new(),
                        r#"{"token":"T1","expires_in":300}"#.to_string(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        String::new(),
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_string(),
                    )
                }
            } else if auth == "Bearer T1" {
                let b = if path.starts_with("/v2/_catalog") {
                    r#"{"repositories":["a/busy","b/other"]}"#
                } else {
                    "{}"
                };
                ("200 OK", String::new(), b.to_string())
            } else {
                (
                    "401 Unauthorized",
                    format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\"\r\n"),
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_string(),
                )
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Fake {
        port,
        token_requests,
    }
}

fn creds(pw: &str) -> Credentials {
    Credentials {
        username: "me".into(),
        password: pw.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn login_gets_a_token_and_a_wrong_password_is_401() {
    let f = start();
    let cfg = RegistryConfig::default();
    let server = format!("127.0.0.1:{}", f.port);
    berth_registry::login(&cfg, &server, creds("pw"))
        .await
        .unwrap();
    assert_eq!(f.token_requests.load(Ordering::SeqCst), 1);
    let e = berth_registry::login(&cfg, &server, creds("nope"))
        .await
        .unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    assert!(e.to_string().contains("401 Unauthorized"), "{e}");
}

#[tokio::test]
async fn tokens_are_cached_per_scope() {
    let f = start();
    let base = format!("http://127.0.0.1:{}", f.port);
    let ep = Endpoint::new(
        &format!("127.0.0.1:{}", f.port),
        &base,
        Some(creds("pw")),
        Default::default(),
    );
    for _ in 0..3 {
        let r = ep
            .send(
                Method::GET,
                "/v2/",
                &[],
                ReqBody::Empty,
                "repository:a/b:pull",
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        f.token_requests.load(Ordering::SeqCst),
        1,
        "one token for one scope"
    );
    let r = ep
        .send(
            Method::GET,
            "/v2/",
            &[],
            ReqBody::Empty,
            "repository:c/d:pull",
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        f.token_requests.load(Ordering::SeqCst),
        2,
        "another scope, another token"
    );
}

#[tokio::test]
async fn catalog_search_through_a_token() {
    let f = start();
    let res = berth_registry::search(
        &RegistryConfig::default(),
        &format!("127.0.0.1:{}/busy", f.port),
        25,
        Some(creds("pw")),
    )
    .await
    .unwrap();
    let names: Vec<_> = res.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names, vec![format!("127.0.0.1:{}/a/busy", f.port)]);
}
