//! `hookgate serve`: open the store, bind, serve until a signal, close the
//! store.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Config;
use crate::delivery::sender::{ProxySettings, Sender};
use crate::delivery::{Engine, EngineSettings};
use crate::model::tenant::{ADMIN_TOKEN_PREFIX, generate_token, hash_token};
use crate::plugins::compile::Compiler;
use crate::plugins::{PluginHost, Plugins};
use crate::service::Service;
use crate::store::{PgOptions, PgStore, Store, StoreError};
use crate::target_guard::TargetGuard;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store in {dir}: {source}")]
    OpenStore { dir: String, source: StoreError },
    #[error("cannot open the store in PostgreSQL: {0}")]
    OpenDatabase(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sender(#[from] crate::delivery::sender::SenderError),
    #[error("cannot start the plugin runtime: {0}")]
    Plugins(#[from] crate::plugins::PluginError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The delivery engine's own runtime (see [`Engine::start`]), one worker per
/// core like the API's. Shut down without waiting when dropped: by then the
/// engine has had its grace period, and a runtime cannot be dropped
/// blocking inside the API's.
struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("hookgate-delivery")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("running until dropped")
            .handle()
            .clone()
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs the gateway until ctrl-c or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = open_store(&config).await?;
    let admin_token_hash = admin_token_hash(&config, &store).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let guard = TargetGuard::new(config.allow_targets.clone(), config.allow_http);
    let proxy = config.proxy.as_ref().map(|url| ProxySettings {
        url: url.clone(),
        no_proxy: config.no_proxy.clone(),
    });
    let sender = Sender::new(
        guard.clone(),
        config.delivery_timeout,
        config.ca_file.as_deref(),
        proxy.as_ref(),
    )?;
    let host = PluginHost::new(config.plugin_limits())?;
    // Uploads compile in child processes of this very binary.
    let compiler = Compiler::process(std::env::current_exe()?, config.compile_limits());
    let artifacts = config.data_dir.join("plugin-artifacts");
    let plugins = Plugins::with_artifact_dir(
        host,
        compiler,
        store.clone(),
        config.plugin_quota(),
        artifacts,
    );
    let delivery = DeliveryRuntime::start()?;
    let engine = Engine::start(
        store.clone(),
        sender,
        plugins.clone(),
        EngineSettings {
            schedule: config.retry_schedule.clone(),
            jitter: config.retry_jitter,
            workers: config.workers,
            endpoint_concurrency: config.endpoint_concurrency,
            tenant_concurrency: config.tenant_concurrency,
            retention_days: config.retention_days,
        },
        delivery.handle(),
    )
    .await?;
    let state = AppState::new(api::Parts {
        guard,
        store: store.clone(),
        service: Service::new(store.clone(), engine.clone(), config.retry_schedule.clone()),
        plugins,
        metrics: install_metrics(),
        config: Arc::new(config),
        admin_token_hash,
    });
    let grace = state.config.shutdown_grace;
    // A stable line on stdout, so scripts and tests can find the port when
    // listening on port 0.
    println!("hookgate listening on http://{addr}");
    let backend = match state.config.database_url {
        Some(_) => "postgresql",
        None => "sled",
    };
    tracing::info!(%addr, backend, data_dir = %state.config.data_dir.display(), "hookgate started");

    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shutting down: letting attempts in flight finish");
    engine.shutdown(grace).await;
    store.close().await?;
    drop(delivery);
    tracing::info!("store closed; bye");
    Ok(())
}

/// Installs the Prometheus recorder behind `/metrics`. Only the first call in
/// a process succeeds; later ones (tests) serve without metrics.
fn install_metrics() -> Option<PrometheusHandle> {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    ];
    // Group and batch sizes are counts, not seconds.
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    PrometheusBuilder::new()
        .set_buckets(&buckets)
        .ok()?
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes)
        .ok()?
        .install_recorder()
        .ok()
}

/// The store the settings name: PostgreSQL at `database_url`, or else sled
/// in `data_dir`.
async fn open_store(config: &Config) -> Result<Store, ServeError> {
    match &config.database_url {
        Some(url) => {
            let options = PgOptions {
                pool_size: config.database_pool,
                lease: config.queue_lease,
                // The longest an attempt runs: its request, after its
                // plugins' chain.
                settle: config.delivery_timeout + config.plugin_deadline,
            };
            PgStore::connect(url, options)
                .await
                .map(Store::on)
                .map_err(ServeError::OpenDatabase)
        }
        None => {
            Store::open(&config.data_dir, (config.store_cache_mib as u64) << 20).map_err(|source| {
                ServeError::OpenStore {
                    dir: config.data_dir.display().to_string(),
                    source,
                }
            })
        }
    }
}

/// The operator token's hash: from config if set; otherwise the stored one;
/// otherwise a new token, printed once, of which only the hash is kept.
async fn admin_token_hash(config: &Config, store: &Store) -> Result<[u8; 32], StoreError> {
    if let Some(token) = &config.admin_token {
        return Ok(hash_token(token));
    }
    if let Some(hash) = store.admin_token_hash().await? {
        return Ok(hash);
    }
    let token = generate_token(ADMIN_TOKEN_PREFIX);
    let hash = hash_token(&token);
    store.set_admin_token_hash(hash).await?;
    println!(
        "Generated the operator admin token (shown once; only its hash is stored):\n\n    {token}\n"
    );
    Ok(hash)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
