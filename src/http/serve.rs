//! The HTTP listener: our own accept loop over hyper, so that one client cannot take the
//! service down (promise 9).
//!
//! - A connection is watched: with no request in progress it must show its next request's
//!   headers within `header_read_timeout` of their first byte, and may stay silent (new, or
//!   idle between keep-alive requests, or a response the client does not read) for at most
//!   `idle_timeout`. A request in progress is bounded by `request_timeout` (the router's
//!   timeout layer). Either way the socket is closed, not left to the client.
//! - Open connections are capped in total and per client address. Over a cap the client is
//!   answered at once (503 or 429, `Connection: close`) instead of queueing, so descriptors
//!   stay free for the database, the outbox and the channels.
//! - A failed `accept` (out of descriptors, say) is logged and the loop pauses briefly rather
//!   than spinning.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How many connections, and how long they may idle.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (the
/// caller bounds that wait).
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, shutdown: CancellationToken) {
    let counts = Arc::new(Counts::default());
    let mut connections = JoinSet::new();
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Finished connections are reaped as we go, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                metrics::counter!("leadrouter_http_accept_errors_total").increment(1);
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = counts.total.load(Ordering::Relaxed),
                        "accepting a connection failed; pausing new connections briefly");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match counts.enter(peer.ip(), &limits) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("leadrouter_http_connections_refused_total", "reason" => refusal.reason())
                    .increment(1);
                // A fresh socket's send buffer is empty: this never blocks.
                let _ = stream.try_write(refusal.response());
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, peer, router.clone(), limits, slot, shutdown.clone()));
    }
    // Shutting down: each connection finishes its request in progress and closes.
    while connections.join_next().await.is_some() {}
}

/// One client connection, from accept to close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    _slot: Slot,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let on_request = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let started = RequestGuard::start(on_request.clone());
        let response = router.clone().oneshot(req.map(axum::body::Body::new));
        // Boxed so the connection is `Unpin`: it is polled without closing the socket, which
        // it then hands back for `linger`.
        Box::pin(async move {
            let response = response.await;
            drop(started);
            response
        })
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Our watch below covers the head; hyper's own timer would also cut idle keep-alive
        // connections at the head timeout.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        // A request finishing moves the deadline: wake up then, not only when it passes.
        let finished = activity.request_done.notified();
        tokio::select! {
            result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                match result {
                    Ok(()) => linger(conn.into_parts().io.into_inner()).await,
                    Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            _ = finished => {}
            _ = sleep_until(deadline) => {
                if let Some(reason) = activity.expired(&limits) {
                    metrics::counter!("leadrouter_http_connections_closed_total", "reason" => reason).increment(1);
                    tracing::debug!(client = %peer.ip(), reason, "connection closed");
                    return;
                }
            }
        }
    }
}

/// How long, and how much, a closing connection reads and drops of what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 << 20;

/// Closes a connection the way nginx's lingering close does: our side is shut, then what the
/// client is still sending (a body refused before it was read, such as an oversized upload
/// answered 413) is read and dropped for a moment. Closing a socket with unread bytes makes
/// the kernel reset it, and the client would then lose the answer before reading it.
async fn linger(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let drain = async {
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a connection has been doing, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// Last byte read or written, or the last request finishing.
    last_progress: AtomicU64,
    /// First byte of a request head not yet complete; `NONE` when there is none.
    head_started: AtomicU64,
    /// Rung when a request finishes: the connection's watch starts timing it again.
    request_done: tokio::sync::Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_progress: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            request_done: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now();
        self.last_progress.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_progress.store(self.now(), Ordering::Relaxed);
        }
    }

    /// When the connection must next be looked at, if at all.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let idle = self.at(self.last_progress.load(Ordering::Relaxed)) + limits.idle_timeout;
        match self.head_started.load(Ordering::Relaxed) {
            NONE => Some(idle),
            started => Some(idle.min(self.at(started) + limits.header_read_timeout)),
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &ConnectionLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = Instant::now();
        let started = self.head_started.load(Ordering::Relaxed);
        if started != NONE && now >= self.at(started) + limits.header_read_timeout {
            return Some("header_timeout");
        }
        (now >= self.at(self.last_progress.load(Ordering::Relaxed)) + limits.idle_timeout).then_some("idle")
    }
}

/// Marks a request in progress; its drop marks the end (also when the client went away).
struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_started.store(NONE, Ordering::Relaxed);
        RequestGuard(activity)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_progress.store(a.now(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        // notify_one keeps the wake-up if the watch is not waiting at this instant.
        a.request_done.notify_one();
    }
}

/// The socket, reporting what moves through it.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            self.activity.read(buf.filled().len() - before);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result {
            self.activity.wrote(n);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.activity.wrote(n);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, in total and per client address.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

enum Refusal {
    Full,
    ClientFull,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Full => "total",
            Refusal::ClientFull => "per_client",
        }
    }

    fn response(&self) -> &'static [u8] {
        match self {
            Refusal::Full => concat!(
                "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\n",
                "content-type: application/json\r\ncontent-length: 82\r\n\r\n",
                r#"{"error":{"code":"unavailable","message":"too many open connections: retry soon"}}"#
            )
            .as_bytes(),
            Refusal::ClientFull => concat!(
                "HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\nretry-after: 1\r\n",
                "content-type: application/json\r\ncontent-length: 89\r\n\r\n",
                r#"{"error":{"code":"rate_limited","message":"too many open connections from your address"}}"#
            )
            .as_bytes(),
        }
    }
}

/// A connection's place in the counts, given back when it closes.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Counts {
    fn enter(self: &Arc<Self>, ip: IpAddr, limits: &ConnectionLimits) -> Result<Slot, Refusal> {
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= limits.max_connections {
            return Err(Refusal::Full);
        }
        let mine = per_client.entry(ip).or_insert(0);
        if *mine >= limits.max_connections_per_client {
            return Err(Refusal::ClientFull);
        }
        *mine += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("leadrouter_http_connections_open").increment(1.0);
        Ok(Slot { counts: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_client = self.counts.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.ip);
            }
        }
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("leadrouter_http_connections_open").decrement(1.0);
    }
}

/// The total cap for a process allowed `file_limit` descriptors: what is left after keeping
/// `reserve` back for the database pool, the outbox, the channels and the files we open.
pub fn connection_budget(file_limit: u64, reserve: u64) -> usize {
    usize::try_from(file_limit.saturating_sub(reserve)).unwrap_or(usize::MAX).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            max_connections: total,
            max_connections_per_client: per_client,
        }
    }

    #[test]
    fn caps_hold_per_client_and_in_total_and_slots_come_back() {
        let counts = Arc::new(Counts::default());
        let l = limits(3, 2);
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let a1 = counts.enter(a, &l).ok();
        let _a2 = counts.enter(a, &l).ok();
        assert!(matches!(counts.enter(a, &l), Err(Refusal::ClientFull)));
        let _b1 = counts.enter(b, &l).ok();
        assert!(matches!(counts.enter(b, &l), Err(Refusal::Full)));
        drop(a1);
        assert!(counts.enter(b, &l).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn refusals_are_complete_http_responses() {
        for r in [Refusal::Full, Refusal::ClientFull] {
            let text = std::str::from_utf8(r.response()).expect("ascii");
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.parse().ok())
                .expect("length");
            assert_eq!(length, body.len(), "{head}");
            assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let a = Activity::new();
        let l = limits(10, 10);
        // Silent: the idle timeout from opening.
        assert_eq!(a.deadline(&l), Some(a.opened + l.idle_timeout));
        tokio::time::advance(Duration::from_millis(500)).await;
        a.read(10);
        // A head has started: its own, shorter limit.
        assert_eq!(a.deadline(&l), Some(a.opened + Duration::from_millis(1500)));
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert_eq!(a.expired(&l), Some("header_timeout"));
        // A request in progress is not ours to time.
        let guard = RequestGuard::start(Arc::new(Activity::new()));
        assert_eq!(guard.0.deadline(&l), None);
        assert_eq!(guard.0.expired(&l), None);
    }
}
