//! Server wiring: the only crate that names concrete implementations. It opens the store,
//! loads the catalog, starts one engine thread per backing model, and serves the API.

#![forbid(unsafe_code)]

pub mod config;
mod engines;
mod imports;
mod lazy;
mod lazy_embed;
mod listen;
mod logs;
mod mail;
mod metrics;
mod panics;
mod relays;
pub mod tls;

pub use config::{Config, ConfigError, DEFAULT_LISTEN};

use anyhow::Context;
use outcrop_api::ApiState;
use outcrop_models::Catalog;
use outcrop_service::{AuthPolicy, Service};
use outcrop_store::{SecretBox, SqlStore, Store};
use std::future::Future;
use std::sync::Arc;

/// Runs the server until `shutdown` completes, then drains in-flight requests and stops the
/// engines.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = config.data_dir()?;
    let (store, shared) = open_store(&data_dir, &config.store).await?;
    let catalog = Catalog::builtin_with(config.chat_model.as_deref(), &config.catalog)?;

    // A shared store gets the development key only when asked for; it keeps one it has.
    if !shared {
        store.set_dev_key(config.auth.dev_key).await?;
    } else if config.auth.dev_key && config.store.seed_dev_key {
        store.set_dev_key(true).await?;
    }
    let endpoints = endpoints(&config, &data_dir).await?;

    let relays = relays::build(&config)?;
    let engines = engines::start(&config, &catalog).await?;
    let store: Arc<dyn outcrop_store::Store> = Arc::new(store);
    let spool = Arc::new(outcrop_service::spool::Spool::new(
        data_dir.join("ledger-spool.jsonl"),
    ));
    // Records spooled by an earlier run, then every half minute those the store refused.
    spool.replay(store.as_ref()).await?;
    tokio::spawn({
        let (spool, store) = (spool.clone(), store.clone());
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = spool.replay(store.as_ref()).await {
                    tracing::error!(error = %e, "could not read the usage spool");
                }
            }
        }
    });
    let shipper = Arc::new(logs::Shipper::new(&config, &data_dir, store.clone())?)
        as Arc<dyn outcrop_service::LogShipper>;
    let (budget, share) = engines.budget();
    let host = Arc::new(imports::Host::new(&config, &data_dir, budget, share)?);
    let service = Arc::new(Service {
        catalog,
        engines: engines.handles(),
        embedders: engines.embedders(),
        embed_slots: tokio::sync::Semaphore::new(2),
        quotas: quotas(&config, &store, shared).await?,
        concurrency: Arc::new(outcrop_service::concurrency::Concurrency::new(
            Some(config.limits.max_concurrent_requests_per_principal).filter(|n| *n > 0),
        )),
        store,
        auth: AuthPolicy {
            allow_dev_key_anywhere: config.auth.allow_dev_key_on_any_address,
        },
        access_mode: config.access.mode,
        outbox: Some(data_dir.join("outbox")),
        log_shipper: Some(shipper),
        mailer: match &config.smtp {
            Some(smtp) => {
                Some(Arc::new(mail::SmtpMailer::new(smtp)?) as Arc<dyn outcrop_service::Mailer>)
            }
            None => None,
        },
        spool: Some(spool),
        model_host: Some(host.clone() as Arc<dyn outcrop_service::imports::ModelHost>),
        imported: Default::default(),
    });
    outcrop_service::imports::resume_jobs(&service).await?;
    let state = Arc::new(ApiState {
        service,
        prompt_mode: config.validation.claude_prompt,
        deterministic: config.engine.deterministic,
        relays,
        request_timeout: Some(config.limits.request_timeout_secs)
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs),
    });
    let app = metrics::router(engines.handles())?
        .merge(outcrop_console::router(state.clone()))
        .merge(outcrop_api::router(state))
        .layer(panics::layer())
        .layer(tower_http::trace::TraceLayer::new_for_http());
    for endpoint in &endpoints {
        tracing::info!("listening on {}", endpoint.url());
    }
    if config.announce {
        // One machine-readable line for the program that started this server; the sockets
        // already listen, so it is ready when read.
        let line = serde_json::json!({
            "endpoint": endpoints.last().map(listen::Endpoint::url),
            "endpoints": endpoints.iter().map(listen::Endpoint::url).collect::<Vec<_>>(),
            "data_dir": data_dir,
            "pid": std::process::id(),
        });
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    // On shutdown, in-flight requests may finish for `shutdown_grace_secs`; generations still
    // running then are ended (a 503, or a serviceUnavailableException frame in a stream).
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let handles = engines.handles();
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    let grace_task = tokio::spawn(async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "grace period over; ending running generations"
            );
            handles.values().for_each(|engine| engine.abort_all());
        }
    });
    let shutdown = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let deadline = std::time::Duration::from_secs(
        config
            .shutdown_deadline_secs
            .max(config.shutdown_grace_secs),
    );
    let served = listen::serve(endpoints, app, &config.limits, shutdown, deadline).await;
    // Drained before the grace period ended: the task's handles must not keep engines alive.
    grace_task.abort();
    let _ = grace_task.await;
    served?;
    tracing::info!("in-flight requests drained; stopping engines");
    engines.stop().await;
    host.stop().await;
    Ok(())
}

/// The listeners: HTTP on `listen`, or HTTPS there when TLS is configured without an address
/// of its own; with `[tls] listen`, HTTP on `listen` and HTTPS on that address.
async fn endpoints(
    config: &Config,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<listen::Endpoint>> {
    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let Some(source) = config.tls.source().map_err(anyhow::Error::msg)? else {
        return Ok(vec![listen::Endpoint {
            listener: bind(config.listen).await?,
            tls: None,
        }]);
    };
    let tls_addr = config.tls.listen.unwrap_or(config.listen);
    let names = tls::development_names(&[config.listen, tls_addr]);
    let certificates = tls::Certificates::load(source, data_dir, &names)?;
    reload_on_sighup(certificates.clone());
    let mut endpoints = Vec::new();
    if config.tls.listen.is_some() {
        endpoints.push(listen::Endpoint {
            listener: bind(config.listen).await?,
            tls: None,
        });
    }
    endpoints.push(listen::Endpoint {
        listener: bind(tls_addr).await?,
        tls: Some(certificates.acceptor()?),
    });
    Ok(endpoints)
}

/// Reads the certificate and key files again on every SIGHUP.
fn reload_on_sighup(certificates: std::sync::Arc<tls::Certificates>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match certificates.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "TLS certificate not reloaded; the previous one stays")
                }
            }
        }
    });
}

/// The configured database: `[store] url`, overridden by `OUTCROP_DATABASE_URL`.
fn database_url(settings: &config::StoreConfig) -> Option<String> {
    std::env::var("OUTCROP_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| settings.url.clone())
}

/// The file holding the store's sealing key; `None` when `OUTCROP_SEALING_KEY` gives it to a
/// Postgres store.
pub fn sealing_key_file(
    data_dir: &std::path::Path,
    settings: &config::StoreConfig,
) -> Option<std::path::PathBuf> {
    match database_url(settings).as_deref() {
        Some(u) if u.starts_with("sqlite://") => {
            Some(std::path::Path::new(&u["sqlite://".len()..]).with_file_name("secret.key"))
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            match std::env::var("OUTCROP_SEALING_KEY") {
                Ok(hex) if !hex.is_empty() => None,
                _ => Some(
                    settings
                        .sealing_key_file
                        .clone()
                        .unwrap_or_else(|| data_dir.join("secret.key")),
                ),
            }
        }
        _ => Some(data_dir.join("secret.key")),
    }
}

/// Opens (creating and migrating) the configured database, with the default account: the
/// data directory's SQLite file unless `[store] url` (or `OUTCROP_DATABASE_URL`) names
/// another. Also says whether it is a shared (Postgres) store.
pub async fn open_store(
    data_dir: &std::path::Path,
    settings: &config::StoreConfig,
) -> anyhow::Result<(SqlStore, bool)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let (store, shared) = match database_url(settings).as_deref() {
        None => (SqlStore::open(&data_dir.join("outcrop.db")).await, false),
        Some(u) if u.starts_with("sqlite://") => (
            SqlStore::open(std::path::Path::new(&u["sqlite://".len()..])).await,
            false,
        ),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            let secrets = match sealing_key_file(data_dir, settings) {
                None => SecretBox::from_hex(&std::env::var("OUTCROP_SEALING_KEY")?)?,
                Some(file) => SecretBox::open_or_create(&file)?,
            };
            (SqlStore::open_postgres(u, secrets).await, true)
        }
        Some(u) => anyhow::bail!(
            "[store] url must start with sqlite:// or postgres://, not {}",
            u.split(':').next().unwrap_or(u)
        ),
    };
    let store = store.context("opening the database")?;
    store
        .ensure_defaults()
        .await
        .context("creating the default account")?;
    Ok((store, shared))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// The config file's quota limits, then those set from the console (the newer word) on top.
async fn quotas(
    config: &Config,
    store: &Arc<dyn outcrop_store::Store>,
    shared: bool,
) -> anyhow::Result<outcrop_service::Quotas> {
    let limits = quota_limits(config, store.as_ref()).await?;
    if !shared {
        return Ok(outcrop_service::Quotas::new(limits));
    }
    let quotas = outcrop_service::Quotas::shared(limits, store.clone());
    // Limits set through any replica are in force on this one within a second; windows of
    // days gone are forgotten.
    let (config, store, kept) = (config.clone(), store.clone(), quotas.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        for tick in 0u64.. {
            every.tick().await;
            match quota_limits(&config, store.as_ref()).await {
                Ok(limits) => kept.replace_all(limits),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not read quota limits"),
            }
            if tick % 600 == 0 {
                let secs = chrono::Utc::now().timestamp();
                if let Err(e) = store
                    .prune_quota_windows(secs / 60 - 2, secs / 86_400 - 2)
                    .await
                {
                    tracing::warn!(error = %e, "could not prune quota windows");
                }
            }
        }
    });
    Ok(quotas)
}

/// The config file's limits with the operator's stored ones over them.
async fn quota_limits(
    config: &Config,
    store: &dyn outcrop_store::Store,
) -> anyhow::Result<std::collections::HashMap<String, outcrop_service::Limits>> {
    let mut limits: std::collections::HashMap<_, _> = config.quotas.clone().into_iter().collect();
    for q in store.quota_overrides().await? {
        let l = outcrop_service::Limits {
            requests_per_minute: q.requests_per_minute,
            tokens_per_minute: q.tokens_per_minute,
            tokens_per_day: q.tokens_per_day,
        };
        limits.insert(q.model_id, l);
    }
    Ok(limits)
}
