//! The IMAP side of the email channel: connecting (implicit TLS, STARTTLS, or plain on
//! loopback), fetching by UID, flagging, and waiting with IDLE. Every command runs under a
//! timeout: async-imap has none of its own outside IDLE.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use futures_util::TryStreamExt;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::settings::{ImapSettings, ImapTls};

/// A byte stream, plain or TLS: one session type for every `tls` setting.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

pub type ImapSession = Session<Box<dyn Io>>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The server refused the credentials: retrying soon will not help.
    #[error("login refused: {0}")]
    Auth(String),
    #[error("{0}")]
    Config(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// What was read could not be committed: the reader stops, and reads it again later.
    #[error(transparent)]
    Unavailable(#[from] crate::channels::Unavailable),
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        match e {
            async_imap::error::Error::Io(io) => ImapError::Io(io),
            other => ImapError::Protocol(other.to_string()),
        }
    }
}

/// Runs `f` under the mailbox's command timeout.
pub async fn timed<T, E: Into<ImapError>>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

fn tls_connector(settings: &ImapSettings) -> Result<TlsConnector, ImapError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ImapError::Config(format!("ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| ImapError::Config(format!("ca_file {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| ImapError::Config(format!("ca_file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connects, upgrades to TLS as configured, and logs in.
pub async fn connect(settings: &ImapSettings) -> Result<ImapSession, ImapError> {
    let limit = settings.command_timeout.0;
    let tcp = timed(limit, "connect", TcpStream::connect((settings.host.as_str(), settings.port))).await?;
    tcp.set_nodelay(true)?;
    let server_name = ServerName::try_from(settings.host.clone())
        .map_err(|_| ImapError::Config(format!("`{}` is not a valid host name", settings.host)))?;
    let stream: Box<dyn Io> = match settings.tls {
        ImapTls::Implicit => {
            let tls = timed(limit, "TLS handshake", tls_connector(settings)?.connect(server_name, tcp)).await?;
            Box::new(tls)
        }
        ImapTls::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            timed(limit, "greeting", async { client.read_response().await.map(|_| ()) }).await?;
            timed(limit, "STARTTLS", client.run_command_and_check_ok("STARTTLS", None)).await?;
            let tcp = client.into_inner();
            let tls = timed(limit, "TLS handshake", tls_connector(settings)?.connect(server_name, tcp)).await?;
            Box::new(tls)
        }
        ImapTls::None => Box::new(tcp),
    };
    let mut client = async_imap::Client::new(stream);
    if settings.tls != ImapTls::Starttls {
        // After STARTTLS there is no second greeting.
        timed(limit, "greeting", async { client.read_response().await.map(|_| ()) }).await?;
    }
    let password = settings.password.as_ref().map(|p| p.expose_secret().to_owned()).unwrap_or_default();
    match tokio::time::timeout(limit, client.login(&settings.username, password)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(match e {
            async_imap::error::Error::No(msg) | async_imap::error::Error::Bad(msg) => ImapError::Auth(msg),
            other => other.into(),
        }),
        Err(_) => Err(ImapError::Timeout("login")),
    }
}

/// A fetched message.
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
    /// INTERNALDATE in Unix milliseconds.
    pub internal_ms: Option<i64>,
}

/// UIDs from `from` on, ascending. UIDs have gaps (expunged mail), so the reader asks which
/// exist instead of fetching fixed ranges.
pub async fn uids_from(session: &mut ImapSession, from: u32, timeout: Duration) -> Result<Vec<u32>, ImapError> {
    let found = timed(timeout, "UID SEARCH", session.uid_search(format!("UID {from}:*"))).await?;
    // `n:*` also matches the highest message when every UID is below `n`.
    let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid >= from).collect();
    uids.sort_unstable();
    Ok(uids)
}

/// The messages with UIDs `first..=last`, oldest first. `BODY.PEEK[]` leaves the `\Seen` flag
/// alone: the message is flagged only after its lead is committed.
pub async fn fetch_range(
    session: &mut ImapSession,
    first: u32,
    last: u32,
    timeout: Duration,
) -> Result<Vec<Fetched>, ImapError> {
    let set = format!("{first}:{last}");
    let fetches: Vec<_> = timed(timeout, "UID FETCH", async {
        let stream = session.uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])").await?;
        stream.try_collect::<Vec<_>>().await
    })
    .await?;
    let mut out: Vec<Fetched> = fetches
        .iter()
        .filter_map(|f| {
            let uid = f.uid.filter(|uid| (first..=last).contains(uid))?;
            Some(Fetched { uid, raw: f.body()?.to_vec(), internal_ms: f.internal_date().map(|d| d.timestamp_millis()) })
        })
        .collect();
    out.sort_by_key(|f| f.uid);
    Ok(out)
}

/// The lowest UID of messages that arrived since `since` (`SEARCH SINCE` has day precision).
pub async fn first_uid_since(
    session: &mut ImapSession,
    since: jiff::civil::Date,
    timeout: Duration,
) -> Result<Option<u32>, ImapError> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.get(usize::try_from(since.month() - 1).unwrap_or(0)).copied().unwrap_or("Jan");
    let query = format!("SINCE {}-{month}-{}", since.day(), since.year());
    let uids = timed(timeout, "UID SEARCH", session.uid_search(query)).await?;
    Ok(uids.into_iter().min())
}

/// Marks the messages processed: `\Seen`, or moved to `folder`.
pub async fn mark_processed(
    session: &mut ImapSession,
    uids: &[u32],
    folder: Option<&str>,
    timeout: Duration,
) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    match folder {
        Some(folder) => timed(timeout, "UID MOVE", session.uid_mv(&set, folder)).await,
        None => {
            timed(timeout, "UID STORE", async {
                let stream = session.uid_store(&set, "+FLAGS.SILENT (\\Seen)").await?;
                stream.try_collect::<Vec<_>>().await.map(|_| ())
            })
            .await
        }
    }
}

/// Waits in IDLE until the server reports a change or `max` passes (re-IDLE before the
/// server's 30-minute limit). Returns the session.
pub async fn idle(session: ImapSession, max: Duration, timeout: Duration) -> Result<ImapSession, ImapError> {
    let mut handle = session.idle();
    timed(timeout, "IDLE", handle.init()).await?;
    let (wait, _stop) = handle.wait_with_timeout(max);
    let outcome = wait.await;
    let session = timed(timeout, "DONE", handle.done()).await?;
    match outcome {
        Ok(IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt) => Ok(session),
        Err(e) => Err(e.into()),
    }
}
