//! One client cannot take the service down (promise 9): slow headers and idle connections
//! are cut off within the configured times, and connection caps (per client, in total) answer
//! at once while the service keeps serving others and delivering its outbox. The real binary,
//! under a real file limit.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::binary::Service;
use crate::support::{BASE_CONFIG, Db, TestDb, eventually};
use crate::webhooks::receiver;

/// Reads until the server closes the connection; how long that took from `since`.
async fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((std::net::Ipv4Addr::from(from), 0).into())?;
    socket.connect(addr).await
}

/// Splits connections into those the server answered at once (with the first bytes of its
/// answer) and those it keeps open, waiting a moment on all of them together.
async fn answered_or_held(conns: Vec<TcpStream>) -> (Vec<String>, Vec<TcpStream>) {
    let checks = conns.into_iter().map(|mut c| async move {
        let mut first = [0u8; 12];
        match tokio::time::timeout(Duration::from_millis(500), c.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => Err(String::from_utf8_lossy(&first[..n]).into_owned()),
            _ => Ok(c),
        }
    });
    let mut answered = Vec::new();
    let mut held = Vec::new();
    for r in futures_util::future::join_all(checks).await {
        match r {
            Ok(c) => held.push(c),
            Err(answer) => answered.push(answer),
        }
    }
    (answered, held)
}

fn address(service: &Service) -> std::net::SocketAddr {
    service.base.trim_start_matches("http://").parse().expect("address")
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_in_time() {
    let db = TestDb::new(Db::Sqlite).await;
    let config = format!("{BASE_CONFIG}\n")
        .replace("[server]\n", "[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n");
    let service = Service::start(&db, &config).await;
    let addr = address(&service);

    // Headers at a byte every 200 ms: cut at the header timeout, however much keeps coming.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
    let drip = async {
        for b in b"X-Slow: 1111111111111111111111111111111111" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), drip).await.ok();
    let mut probe = [0u8; 1];
    let closed =
        matches!(tokio::time::timeout(Duration::from_secs(1), slow.read(&mut probe)).await, Ok(Ok(0) | Err(_)));
    assert!(closed, "slow headers were not cut off");
    assert!(started.elapsed() < Duration::from_secs(6));

    // A connection opened and left silent: cut at the idle timeout.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let took = closed_after(&mut silent, Instant::now(), Duration::from_secs(6)).await;
    assert!((Duration::from_millis(1800)..Duration::from_millis(4000)).contains(&took), "silent: {took:?}");

    // Keep-alive after a request: the same idle timeout from the end of the response.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = kept.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let took = closed_after(&mut kept, Instant::now(), Duration::from_secs(6)).await;
    assert!((Duration::from_millis(1800)..Duration::from_millis(4000)).contains(&took), "keep-alive: {took:?}");

    // A body that arrives slowly belongs to a request in progress: the idle cut does not
    // apply (`request_timeout` bounds it instead).
    let json = format!("{:<100}", r#"{"email":"slow-body@example.com"}"#);
    let mut body = TcpStream::connect(addr).await.expect("connect");
    let head = "POST /api/v1/forms/contact HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    body.write_all(head.as_bytes()).await.expect("write");
    body.write_all(&json.as_bytes()[..1]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    body.write_all(&json.as_bytes()[1..]).await.expect("the connection is still open");
    let n = body.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 202"), "{}", String::from_utf8_lossy(&buf[..n]));
    // That request outlasted the idle timeout; once it is answered, the idle time counts anew.
    let took = closed_after(&mut body, Instant::now(), Duration::from_secs(6)).await;
    assert!(
        (Duration::from_millis(1800)..Duration::from_millis(4000)).contains(&took),
        "after a long request: {took:?}"
    );
}

#[tokio::test]
async fn one_client_cannot_take_the_service_down() {
    // Our own client side needs more descriptors than the service may have.
    rlimit::increase_nofile_limit(8192).expect("raise the test's file limit");
    let (hook, received) = receiver(StatusCode::OK).await;
    let db = TestDb::new(Db::Sqlite).await;
    let config = format!(
        "{}\n[[notify.webhooks]]\nurl = \"{hook}\"\nevents = [\"lead.created\"]\n",
        BASE_CONFIG.replace("[server]\n", "[server]\nmax_connections_per_client = 50\n")
    );
    let service = Service::start_limited(&db, &config, Some(400)).await;
    let addr = address(&service);
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    let healthz = || http.get(format!("{}/healthz", service.base)).timeout(Duration::from_secs(2)).send();
    assert_eq!(healthz().await.expect("healthz").status(), StatusCode::OK, "a keep-alive monitor");

    // One client opens far more connections than it may: what is over its cap is answered
    // 429 at once and closed; the rest of the world does not notice.
    let mut flood = Vec::new();
    for _ in 0..1100 {
        flood.push(connect_from([127, 0, 0, 2], addr).await.expect("connect"));
    }
    let (refused, held) = answered_or_held(flood).await;
    assert_eq!(held.len(), 50, "the per-client cap");
    assert_eq!(refused.len(), 1050);
    assert!(refused.iter().all(|a| a.starts_with("HTTP/1.1 429")), "{:?}", refused.first());
    let started = Instant::now();
    assert_eq!(healthz().await.expect("healthz").status(), StatusCode::OK);
    let fresh = reqwest::Client::new();
    let r = fresh.get(format!("{}/healthz", service.base)).send().await.expect("a new connection");
    assert_eq!(r.status(), StatusCode::OK);
    let r = fresh
        .post(format!("{}/api/v1/forms/contact", service.base))
        .json(&json!({"email": "during-the-flood@example.com"}))
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(10, || async { !received.0.lock().expect("lock").is_empty() }).await;
    assert!(started.elapsed() < Duration::from_secs(10));

    // Many addresses together reach the total cap, which the file limit sets: new
    // connections get a fast 503, the monitor's open connection and the outbox keep working.
    let mut crowd = Vec::new();
    'fill: for host in 10..40u8 {
        for _ in 0..50 {
            match connect_from([127, 0, 0, host], addr).await {
                Ok(c) => crowd.push(c),
                Err(_) => break 'fill,
            }
        }
    }
    let (unavailable, crowd) = answered_or_held(crowd).await;
    assert!(unavailable.iter().all(|a| a.starts_with("HTTP/1.1 503")), "{:?}", unavailable.first());
    let unavailable = unavailable.len();
    assert!(unavailable > 0, "the total cap was reached");
    assert!(crowd.len() + held.len() < 400, "the cap keeps descriptors back: {} open", crowd.len() + held.len());
    assert_eq!(healthz().await.expect("the monitor's connection").status(), StatusCode::OK);
    let before = received.0.lock().expect("lock").len();
    // The lead goes in over the monitor's connection: the outbox must still reach the webhook.
    let r = http
        .post(format!("{}/api/v1/forms/contact", service.base))
        .json(&json!({"email": "at-the-cap@example.com"}))
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(10, || async { received.0.lock().expect("lock").len() > before }).await;

    // Once they go, everyone is served again.
    drop(crowd);
    drop(held);
    eventually(5, || async {
        reqwest::Client::new().get(format!("{}/healthz", service.base)).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
}
