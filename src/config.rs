//! Operator configuration (docs/product.md, "Configuration"): defaults, then
//! `hookgate.toml`, then `HOOKGATE_*` environment variables and command-line
//! flags.
//!
//! [`Config::default`] is the one place defaults live. The TOML file uses the
//! field names of [`Config`]; [`ServeArgs`] mirrors every field as a flag with
//! its environment variable, so `hookgate serve --help` documents them all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;

use crate::delivery::RetrySchedule;

/// Everything the gateway process is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Plain operator token; `None` means "use the stored (or a generated) one".
    pub admin_token: Option<String>,
    /// CIDRs endpoint URLs may reach despite the private-address guard.
    pub allow_targets: Vec<IpNet>,
    /// Whether endpoint URLs may use plain `http://` (development, private networks).
    pub allow_http: bool,
    /// Extra PEM roots to trust when delivering.
    pub ca_file: Option<PathBuf>,
    pub retry_schedule: RetrySchedule,
    /// Random spread of retry delays, as a fraction (0.1 = ±10%).
    pub retry_jitter: f64,
    /// Attempts in flight at once, across all endpoints.
    pub workers: usize,
    /// Attempts in flight at once to one endpoint.
    pub endpoint_concurrency: usize,
    /// Attempts in flight at once for one tenant, all its endpoints
    /// together: what one tenant's slow receivers or plugins can hold of
    /// the workers.
    pub tenant_concurrency: usize,
    pub log_format: LogFormat,
    /// Largest request body the API accepts, in bytes.
    pub max_body_bytes: usize,
    #[serde(with = "duration_str")]
    pub delivery_timeout: Duration,
    /// How long the previous secret keeps signing after a rotation.
    #[serde(with = "duration_str")]
    pub rotation_overlap: Duration,
    /// CPU time one plugin call may use.
    #[serde(with = "duration_str")]
    pub plugin_timeout: Duration,
    /// Wall-clock time a delivery's plugin chain, or one dry run, may take.
    #[serde(with = "duration_str")]
    pub plugin_deadline: Duration,
    /// Linear memory one plugin call may use, all its memories together, in MiB.
    pub plugin_memory_mib: usize,
    /// Largest body a plugin may return, in bytes.
    pub plugin_output_bytes: usize,
    /// Largest plugin component that may be uploaded, in bytes.
    pub max_plugin_bytes: usize,
    /// Plugin versions one tenant may keep.
    pub plugin_max_count: usize,
    /// Bytes of components one tenant's plugins may take in all, in MiB.
    pub plugin_max_total_mib: usize,
    /// Memory (heap) one plugin compile may use, in MiB.
    pub plugin_compile_memory_mib: usize,
    /// CPU time one plugin compile may use.
    #[serde(with = "duration_str")]
    pub plugin_compile_cpu: Duration,
    /// Delivery logs older than this many days are pruned.
    pub retention_days: u32,
    /// Memory the store may use to cache records, in MiB. sled's own default
    /// is 1 GiB, which a large backlog would fill; beyond the cache, reads
    /// come from the page cache of the OS.
    pub store_cache_mib: usize,
    /// How long shutdown waits for in-flight attempts.
    #[serde(with = "duration_str")]
    pub shutdown_grace: Duration,
    /// Serve the dashboard's files from this folder instead of the copy
    /// embedded in the binary (for working on `ui/` without rebuilding).
    pub ui_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            admin_token: None,
            allow_targets: Vec::new(),
            allow_http: false,
            ca_file: None,
            retry_schedule: RetrySchedule::default(),
            retry_jitter: 0.0,
            workers: 256,
            endpoint_concurrency: 8,
            tenant_concurrency: 128,
            log_format: LogFormat::Text,
            max_body_bytes: 1024 * 1024,
            delivery_timeout: Duration::from_secs(15),
            rotation_overlap: Duration::from_secs(24 * 3600),
            plugin_timeout: Duration::from_millis(100),
            plugin_deadline: Duration::from_secs(1),
            plugin_memory_mib: 32,
            plugin_output_bytes: 1024 * 1024,
            max_plugin_bytes: 10 * 1024 * 1024,
            plugin_max_count: 100,
            plugin_max_total_mib: 100,
            plugin_compile_memory_mib: 512,
            plugin_compile_cpu: Duration::from_secs(10),
            retention_days: 30,
            store_cache_mib: 16,
            shutdown_grace: Duration::from_secs(30),
            ui_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `hookgate serve` options. Each overrides the config file's key of the same
/// name; each can also be set by the environment variable shown.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML config file; keys are the long option names with '_' for '-'.
    #[arg(long, short, env = "HOOKGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "HOOKGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded sled store [default: ./data].
    #[arg(long, env = "HOOKGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Operator admin token. If none is configured, one is generated on first
    /// start, printed once, and only its hash is stored.
    #[arg(
        long,
        env = "HOOKGATE_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Comma-separated CIDRs that endpoint URLs may reach despite the
    /// private-address guard, e.g. 127.0.0.0/8,10.1.0.0/16.
    #[arg(
        long,
        env = "HOOKGATE_ALLOW_TARGETS",
        value_name = "CIDRS",
        value_delimiter = ','
    )]
    pub allow_targets: Option<Vec<IpNet>>,
    /// Let endpoint URLs use plain http:// (development and private networks only) [default: false].
    #[arg(long, env = "HOOKGATE_ALLOW_HTTP", value_name = "BOOL")]
    pub allow_http: Option<bool>,
    /// PEM file of extra root certificates to trust when delivering.
    #[arg(long, env = "HOOKGATE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Comma-separated delays of each delivery attempt [default: 0s,1m,5m,30m,2h,24h].
    #[arg(long, env = "HOOKGATE_RETRY_SCHEDULE", value_name = "DELAYS")]
    pub retry_schedule: Option<RetrySchedule>,
    /// Random spread of retry delays as a fraction, e.g. 0.1 for ±10% [default: 0].
    #[arg(long, env = "HOOKGATE_RETRY_JITTER", value_name = "FRACTION")]
    pub retry_jitter: Option<f64>,
    /// Delivery attempts in flight at once, across all endpoints [default: 256].
    #[arg(long, env = "HOOKGATE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Delivery attempts in flight at once to one endpoint [default: 8].
    #[arg(long, env = "HOOKGATE_ENDPOINT_CONCURRENCY", value_name = "N")]
    pub endpoint_concurrency: Option<usize>,
    /// Delivery attempts in flight at once for one tenant, all its endpoints together [default: 128].
    #[arg(long, env = "HOOKGATE_TENANT_CONCURRENCY", value_name = "N")]
    pub tenant_concurrency: Option<usize>,
    /// Log output format [default: text].
    #[arg(long, env = "HOOKGATE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Largest accepted API request body in bytes; larger ones get 413 [default: 1048576].
    #[arg(long, env = "HOOKGATE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Time a receiver has to answer a delivery [default: 15s].
    #[arg(long, env = "HOOKGATE_DELIVERY_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub delivery_timeout: Option<Duration>,
    /// How long the old secret keeps signing after a rotation [default: 24h].
    #[arg(long, env = "HOOKGATE_ROTATION_OVERLAP", value_name = "DURATION", value_parser = parse_duration)]
    pub rotation_overlap: Option<Duration>,
    /// CPU time one plugin call may use [default: 100ms].
    #[arg(long, env = "HOOKGATE_PLUGIN_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub plugin_timeout: Option<Duration>,
    /// Wall-clock time a delivery's plugin chain, or one dry run, may take [default: 1s].
    #[arg(long, env = "HOOKGATE_PLUGIN_DEADLINE", value_name = "DURATION", value_parser = parse_duration)]
    pub plugin_deadline: Option<Duration>,
    /// Memory one plugin call may use, all its memories together, in MiB [default: 32].
    #[arg(long, env = "HOOKGATE_PLUGIN_MEMORY_MIB", value_name = "MIB")]
    pub plugin_memory_mib: Option<usize>,
    /// Largest body a plugin may return, in bytes [default: 1048576].
    #[arg(long, env = "HOOKGATE_PLUGIN_OUTPUT_BYTES", value_name = "BYTES")]
    pub plugin_output_bytes: Option<usize>,
    /// Largest plugin upload, in bytes [default: 10485760].
    #[arg(long, env = "HOOKGATE_MAX_PLUGIN_BYTES", value_name = "BYTES")]
    pub max_plugin_bytes: Option<usize>,
    /// Plugin versions one tenant may keep [default: 100].
    #[arg(long, env = "HOOKGATE_PLUGIN_MAX_COUNT", value_name = "N")]
    pub plugin_max_count: Option<usize>,
    /// Bytes of components one tenant's plugins may take in all, in MiB [default: 100].
    #[arg(long, env = "HOOKGATE_PLUGIN_MAX_TOTAL_MIB", value_name = "MIB")]
    pub plugin_max_total_mib: Option<usize>,
    /// Memory (heap) one plugin compile may use, in MiB [default: 512].
    #[arg(long, env = "HOOKGATE_PLUGIN_COMPILE_MEMORY_MIB", value_name = "MIB")]
    pub plugin_compile_memory_mib: Option<usize>,
    /// CPU time one plugin compile may use [default: 10s].
    #[arg(long, env = "HOOKGATE_PLUGIN_COMPILE_CPU", value_name = "DURATION", value_parser = parse_duration)]
    pub plugin_compile_cpu: Option<Duration>,
    /// Days delivery logs are kept [default: 30].
    #[arg(long, env = "HOOKGATE_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// Memory the store caches records in, in MiB [default: 16].
    #[arg(long, env = "HOOKGATE_STORE_CACHE_MIB", value_name = "MIB")]
    pub store_cache_mib: Option<usize>,
    /// How long shutdown waits for in-flight deliveries [default: 30s].
    #[arg(long, env = "HOOKGATE_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Serve the /ui dashboard from this folder instead of the embedded copy
    /// (for working on ui/ without rebuilding) [default: embedded].
    #[arg(long, env = "HOOKGATE_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

impl ServeArgs {
    /// The effective configuration: defaults < config file < env and flags.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field { config.$field = v; }
            )*};
        }
        set!(
            listen,
            data_dir,
            allow_targets,
            allow_http,
            retry_schedule,
            retry_jitter,
            workers,
            endpoint_concurrency,
            tenant_concurrency,
            log_format,
            max_body_bytes,
            delivery_timeout,
            rotation_overlap,
            plugin_timeout,
            plugin_deadline,
            plugin_memory_mib,
            plugin_output_bytes,
            max_plugin_bytes,
            plugin_max_count,
            plugin_max_total_mib,
            plugin_compile_memory_mib,
            plugin_compile_cpu,
            retention_days,
            store_cache_mib,
            shutdown_grace
        );
        if self.admin_token.is_some() {
            config.admin_token = self.admin_token;
        }
        if self.ca_file.is_some() {
            config.ca_file = self.ca_file;
        }
        if self.ui_dir.is_some() {
            config.ui_dir = self.ui_dir;
        }
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The sandbox limits of one plugin call.
    pub fn plugin_limits(&self) -> crate::plugins::Limits {
        crate::plugins::Limits {
            time: self.plugin_timeout,
            deadline: self.plugin_deadline,
            memory: self.plugin_memory_mib << 20,
            output: self.plugin_output_bytes,
        }
    }

    /// The bounds of one plugin compile.
    pub fn compile_limits(&self) -> crate::plugins::compile::CompileLimits {
        crate::plugins::compile::CompileLimits {
            memory: self.plugin_compile_memory_mib << 20,
            cpu: self.plugin_compile_cpu,
        }
    }

    /// How much plugin content one tenant may keep.
    pub fn plugin_quota(&self) -> crate::store::PluginQuota {
        crate::store::PluginQuota {
            count: self.plugin_max_count,
            bytes: self.plugin_max_total_mib << 20,
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err(ConfigError::Invalid(
                "retry_jitter must be between 0 and 1".into(),
            ));
        }
        if self.workers == 0 || self.endpoint_concurrency == 0 || self.tenant_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "workers, endpoint_concurrency and tenant_concurrency must be at least 1".into(),
            ));
        }
        if self.plugin_timeout.is_zero() || self.plugin_memory_mib == 0 {
            return Err(ConfigError::Invalid(
                "plugin_timeout and plugin_memory_mib must be positive".into(),
            ));
        }
        if self.plugin_deadline < self.plugin_timeout {
            return Err(ConfigError::Invalid(
                "plugin_deadline must be at least plugin_timeout".into(),
            ));
        }
        if self.plugin_compile_memory_mib < 64 || self.plugin_compile_cpu < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "plugin_compile_memory_mib must be at least 64 and plugin_compile_cpu at least 1s"
                    .into(),
            ));
        }
        if self.store_cache_mib == 0 {
            return Err(ConfigError::Invalid(
                "store_cache_mib must be at least 1".into(),
            ));
        }
        if self.delivery_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "delivery_timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Durations in the config file are strings such as "15s" or "24h".
mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.retry_schedule.attempts(), 6);
        assert_eq!(c.delivery_timeout, Duration::from_secs(15));
    }

    #[test]
    fn file_keys_are_read_and_unknown_keys_refused() {
        let c = Config::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            allow_targets = ["127.0.0.0/8", "::1/128"]
            retry_schedule = "0ms,50ms"
            rotation_overlap = "2s"
            log_format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.allow_targets.len(), 2);
        assert_eq!(c.retry_schedule.attempts(), 2);
        assert_eq!(c.rotation_overlap, Duration::from_secs(2));
        assert_eq!(c.log_format, LogFormat::Json);
        let err = Config::from_toml("lissten = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lissten"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookgate.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nretention_days = 7\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:2".parse().unwrap()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.retention_days, 7);
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        let args = ServeArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Invalid(_))));
    }
}
