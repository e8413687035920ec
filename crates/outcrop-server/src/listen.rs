//! The listeners: HTTP/1.1 and HTTP/2 (cleartext with prior knowledge, or over TLS by ALPN) on
//! each address, every request tagged with its [`Origin`], and a graceful stop.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use outcrop_service::Origin;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One listening socket, plain or TLS.
pub struct Endpoint {
    pub listener: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl Endpoint {
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.listener.local_addr() {
            Ok(addr) => format!("{scheme}://{addr}"),
            Err(_) => format!("{scheme}://?"),
        }
    }
}

struct Accepted {
    stream: TcpStream,
    origin: Origin,
    tls: Option<TlsAcceptor>,
}

/// Serves `app` on every endpoint until `shutdown` completes, then stops accepting and waits
/// for open connections to finish their requests (HTTP/2 connections get a GOAWAY), for at
/// most `deadline`.
pub async fn serve(
    endpoints: Vec<Endpoint>,
    app: Router,
    limits: &crate::config::LimitsConfig,
    shutdown: impl Future<Output = ()>,
    deadline: Duration,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (tx, mut rx) = mpsc::channel::<Accepted>(64);
    let mut acceptors = tokio::task::JoinSet::new();
    for endpoint in endpoints {
        let local = endpoint.listener.local_addr()?;
        acceptors.spawn(accept(endpoint, local, tx.clone()));
    }
    drop(tx);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A connection whose request headers take longer than the header-read timeout is closed.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)));
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = rx.recv() => accepted,
        };
        let Some(accepted) = accepted else { break };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(peer = %accepted.origin.peer, max = limits.max_connections, "connection limit reached; closing a new connection");
            metrics::counter!("ConnectionsRefused").increment(1);
            continue;
        };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Accepted {
                stream,
                origin,
                tls,
            } = accepted;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(origin);
                    app.clone().oneshot(request.map(axum::body::Body::new))
                });
            let served = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %origin.peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %origin.peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(peer = %origin.peer, error = %e, "connection ended with an error");
            }
        });
    }
    acceptors.shutdown().await;
    drop(rx);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_secs = deadline.as_secs(),
            "shutdown deadline reached; dropping the connections still open"
        );
    }
    Ok(())
}

/// Accepts connections on one listener and hands them to the serving loop.
async fn accept(endpoint: Endpoint, local: SocketAddr, tx: mpsc::Sender<Accepted>) {
    loop {
        let (stream, peer) = match endpoint.listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%local, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let origin = Origin {
            peer,
            local,
            tls: endpoint.tls.is_some(),
        };
        let accepted = Accepted {
            stream,
            origin,
            tls: endpoint.tls.clone(),
        };
        if tx.send(accepted).await.is_err() {
            return;
        }
    }
}
