//! Operator configuration (docs/product.md, "Configuration"): defaults, then
//! `hookgate.toml`, then `HOOKGATE_*` environment variables and command-line
//! flags.
//!
//! Each setting is declared once, in the `settings!` table below: its name,
//! type, default and doc. That one entry makes the field of [`Config`] (the
//! TOML key of the same name) and its value in [`Config::default`], the
//! option of [`ServeArgs`] (`--name-with-dashes` and `HOOKGATE_NAME_IN_CAPS`,
//! whose help ends with the default), and the row of [`settings_table`], the
//! table README.md shows (a test checks that README.md holds it unchanged).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;

use crate::delivery::RetrySchedule;
use crate::plugins::Limits;
use crate::plugins::compile::CompileLimits;

/// `HOOKGATE_` followed by a setting's name in capitals, as a `&'static str`
/// made at compile time.
macro_rules! env_name {
    ($field:ident) => {{
        const NAME: &str = stringify!($field);
        const BYTES: [u8; ENV_PREFIX.len() + NAME.len()] = env_bytes(NAME);
        const ENV: &str = match std::str::from_utf8(&BYTES) {
            Ok(env) => env,
            Err(_) => panic!("setting names are ASCII"),
        };
        ENV
    }};
}

const ENV_PREFIX: &str = "HOOKGATE_";

const fn env_bytes<const N: usize>(name: &str) -> [u8; N] {
    let prefix = ENV_PREFIX.as_bytes();
    let name = name.as_bytes();
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < prefix.len() {
            prefix[i]
        } else {
            name[i - prefix.len()].to_ascii_uppercase()
        };
        i += 1;
    }
    out
}

/// Declares every setting; see the module doc for what each entry makes.
///
/// An entry is the setting's doc, then
/// `name: Type = default, "VALUE_NAME"`, optionally followed by
/// `, shown "text"` (the default as people should read it, in Markdown,
/// when the value itself says nothing, as for `None`) and
/// `, arg(...)` (more clap attributes of the option), then `;`.
///
/// The doc's first paragraph is the option's help, in README.md too; later
/// paragraphs are for the field's rustdoc only. `Duration` settings read
/// forms such as "15s" or "24h" in the file and on the command line. An
/// `Option<T>` setting takes a `T` option, which sets it to `Some`.
macro_rules! settings {
    // Each entry is first rewritten to one uniform shape, then all of them
    // are expanded together (`@expand`).
    (@munch [$($done:tt)*]) => {
        settings!(@expand $($done)*);
    };
    (@munch [$($done:tt)*]
        $(#[doc = $doc:literal])*
        $field:ident: Option<$inner:ty> = $default:expr, $value_name:literal
        $(, shown $shown:literal)? $(, arg($($arg:tt)*))?;
        $($rest:tt)*
    ) => {
        settings!(@munch [$($done)* {
            [$($doc)*] $field: Option<$inner>, flag $inner, set Some, default $default,
            value_name $value_name, shown [$($shown)?], serde [], arg [$(, $($arg)*)?]
        }] $($rest)*);
    };
    (@munch [$($done:tt)*]
        $(#[doc = $doc:literal])*
        $field:ident: Duration = $default:expr, $value_name:literal
        $(, shown $shown:literal)? $(, arg($($arg:tt)*))?;
        $($rest:tt)*
    ) => {
        settings!(@munch [$($done)* {
            [$($doc)*] $field: Duration, flag Duration, set std::convert::identity,
            default $default, value_name $value_name, shown [$($shown)?],
            serde [#[serde(with = "duration_str")]],
            arg [, value_parser = parse_duration $(, $($arg)*)?]
        }] $($rest)*);
    };
    (@munch [$($done:tt)*]
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:expr, $value_name:literal
        $(, shown $shown:literal)? $(, arg($($arg:tt)*))?;
        $($rest:tt)*
    ) => {
        settings!(@munch [$($done)* {
            [$($doc)*] $field: $ty, flag $ty, set std::convert::identity, default $default,
            value_name $value_name, shown [$($shown)?], serde [], arg [$(, $($arg)*)?]
        }] $($rest)*);
    };
    (@expand $({
        [$($doc:literal)*] $field:ident: $ty:ty, flag $flag:ty, set $set:path,
        default $default:expr, value_name $value_name:literal, shown [$($shown:literal)?],
        serde [$(#[$serde:meta])*], arg [$($arg:tt)*]
    })*) => {
        /// Everything the gateway process is configured with.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                $(#[$serde])*
                pub $field: $ty,
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                }
            }
        }

        /// `hookgate serve` options. Each overrides the config file's key of
        /// the same name; each can also be set by the environment variable
        /// shown.
        #[derive(Debug, Clone, Default, Args)]
        pub struct ServeArgs {
            /// TOML config file; keys are the long option names with '_' for '-'.
            #[arg(long, short, env = "HOOKGATE_CONFIG", value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                #[arg(
                    long,
                    env = env_name!($field),
                    value_name = $value_name,
                    help = declared::$field().help()
                    $($arg)*
                )]
                pub $field: Option<$flag>,
            )*
        }

        impl ServeArgs {
            /// Sets every setting given as an option (or its variable).
            fn apply(self, config: &mut Config) {
                $(
                    if let Some(v) = self.$field {
                        config.$field = $set(v);
                    }
                )*
            }
        }

        /// Each setting as documented, by name.
        mod declared {
            use super::*;

            $(
                pub(super) fn $field() -> Setting {
                    let default: $ty = $default;
                    Setting {
                        name: stringify!($field),
                        env: env_name!($field),
                        default: Setting::show_default(&default, None $(.or(Some($shown)))?),
                        doc: Setting::summary(&[$($doc),*]),
                    }
                }
            )*
        }

        /// Every setting, in the order of [`Config`]'s fields.
        pub fn settings() -> Vec<Setting> {
            vec![$(declared::$field()),*]
        }
    };
    ($($entries:tt)*) => {
        settings!(@munch [] $($entries)*);
    };
}

settings! {
    /// Address to listen on; port 0 picks a free port.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), "ADDR";

    /// Directory of the embedded sled store.
    data_dir: PathBuf = PathBuf::from("./data"), "DIR";

    /// PostgreSQL database to keep the store in instead of sled, e.g.
    /// `postgres://hookgate:secret@db.internal:5432/hookgate`; gateways on
    /// one database share its work (docs/cluster.md).
    database_url: Option<String> = None, "URL", shown "none (sled in data_dir)",
        arg(hide_env_values = true);

    /// Connections to PostgreSQL one gateway keeps at most.
    database_pool: usize = 16, "N";

    /// How long a gateway's claim on a due delivery lasts unless it renews
    /// it (it does, every third of this, while it holds the delivery): the
    /// time the other gateways of one database wait before taking over the
    /// work of one that died.
    queue_lease: Duration = Duration::from_secs(30), "DURATION";

    /// Operator admin token, at least 16 characters. If none is configured,
    /// one is generated on first start, printed once, and only its hash is
    /// stored.
    ///
    /// The plain token; `None` means "use the stored (or a generated) one".
    admin_token: Option<String> = None, "TOKEN", shown "generated once",
        arg(hide_env_values = true);

    /// CIDRs that endpoint URLs may reach despite the private-address guard,
    /// comma-separated (a list in the file), e.g. `127.0.0.0/8,10.1.0.0/16`.
    allow_targets: Vec<IpNet> = Vec::new(), "CIDRS", arg(value_delimiter = ',');

    /// Whether endpoint URLs may use plain `http://` (development and private
    /// networks only).
    allow_http: bool = false, "BOOL";

    /// PEM file of extra root certificates to trust when delivering.
    ca_file: Option<PathBuf> = None, "FILE";

    /// HTTP(S) proxy every delivery goes through, e.g.
    /// `http://proxy.internal:3128`; the address guard still applies to each
    /// target.
    proxy: Option<String> = None, "URL", shown "none";

    /// Hosts deliveries reach directly despite `proxy`, comma-separated:
    /// names, `.domain` suffixes, IPs or CIDRs.
    no_proxy: Vec<String> = Vec::new(), "HOSTS", arg(value_delimiter = ',');

    /// Comma-separated delays before each delivery attempt.
    retry_schedule: RetrySchedule = RetrySchedule::default(), "DELAYS";

    /// Random spread of retry delays, as a fraction (0.1 = ±10%).
    retry_jitter: f64 = 0.0, "FRACTION";

    /// Delivery attempts in flight at once, across all endpoints.
    workers: usize = 256, "N";

    /// Most delivery attempts in flight at once to one endpoint without its
    /// own `max_in_flight`; each endpoint's limit adapts below it to its
    /// receiver's answers.
    endpoint_concurrency: usize = 64, "N";

    /// Delivery attempts in flight at once for one tenant, all its endpoints
    /// together: what one tenant's slow receivers or plugins can hold of the
    /// workers.
    tenant_concurrency: usize = 128, "N";

    /// Log output format, `text` or `json` (the level comes from `RUST_LOG`).
    log_format: LogFormat = LogFormat::Text, "FORMAT";

    /// Largest request body the API accepts, in bytes; larger ones get 413.
    max_body_bytes: usize = 1024 * 1024, "BYTES";

    /// Time a receiver has to answer a delivery.
    delivery_timeout: Duration = Duration::from_secs(15), "DURATION";

    /// How long the previous secret keeps signing after a rotation.
    rotation_overlap: Duration = Duration::from_secs(24 * 3600), "DURATION";

    /// CPU time one plugin call may use.
    plugin_timeout: Duration = Limits::DEFAULT.time, "DURATION";

    /// Wall-clock time a delivery's plugin chain, or one dry run, may take.
    plugin_deadline: Duration = Limits::DEFAULT.deadline, "DURATION";

    /// Plugin calls one tenant may run at once, all its endpoints together:
    /// what one tenant's plugins may take of the delivery threads.
    plugin_tenant_calls: usize = Limits::DEFAULT.tenant_calls, "N";

    /// Linear memory one plugin call may use, all its memories together, in
    /// MiB.
    plugin_memory_mib: usize = Limits::DEFAULT.memory >> 20, "MIB";

    /// Largest body a plugin may return, in bytes.
    plugin_output_bytes: usize = Limits::DEFAULT.output, "BYTES";

    /// Largest plugin component that may be uploaded, in bytes: room for
    /// a Python component (its interpreter makes it ~18 MB).
    max_plugin_bytes: usize = 32 * 1024 * 1024, "BYTES";

    /// Plugin versions one tenant may keep.
    plugin_max_count: usize = 100, "N";

    /// Bytes of components one tenant's plugins may take in all, in MiB.
    plugin_max_total_mib: usize = 256, "MIB";

    /// Memory (heap) one plugin compile may use, in MiB; compiles run in a
    /// child process.
    plugin_compile_memory_mib: usize = CompileLimits::DEFAULT.memory >> 20, "MIB";

    /// CPU time one plugin compile may use.
    plugin_compile_cpu: Duration = CompileLimits::DEFAULT.cpu, "DURATION";

    /// Delivery logs older than this many days are pruned.
    retention_days: u32 = 30, "DAYS";

    /// Memory the store may use to cache records, in MiB.
    ///
    /// sled's own default is 1 GiB, which a large backlog would fill; beyond
    /// the cache, reads come from the page cache of the OS.
    store_cache_mib: usize = 16, "MIB";

    /// How long shutdown waits for in-flight attempts.
    shutdown_grace: Duration = Duration::from_secs(30), "DURATION";

    /// Token `/metrics` requires (`Authorization: Bearer <token>`), at least
    /// 16 characters; `/metrics` is open when unset.
    metrics_token: Option<String> = None, "TOKEN", shown "none (open)",
        arg(hide_env_values = true);

    /// Serve the `/ui` dashboard's files from this folder instead of the copy
    /// embedded in the binary (for working on `ui/` without rebuilding).
    ui_dir: Option<PathBuf> = None, "DIR", shown "embedded";
}

/// One setting as people see it: in `hookgate serve --help` and in
/// README.md's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The field of [`Config`] and TOML key; the option is the same with '-'
    /// for '_'.
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The default, in Markdown: a value in backticks, or words.
    pub default: String,
    /// What it is: the first paragraph of its doc, in Markdown.
    pub doc: String,
}

impl Setting {
    /// The option's help: the doc and the default, without Markdown.
    pub fn help(&self) -> String {
        let doc = self.doc.strip_suffix('.').unwrap_or(&self.doc);
        format!("{doc} [default: {}]", self.default).replace('`', "")
    }

    /// The setting's row in README.md's table.
    pub fn table_row(&self) -> String {
        let doc = self.doc.strip_suffix('.').unwrap_or(&self.doc);
        format!(
            "| `{}` | {} | {} |",
            self.env,
            self.default.replace('|', "\\|"),
            doc.replace('|', "\\|")
        )
    }

    /// `shown` when given, else the value in backticks, or "none" when unset.
    fn show_default(value: &impl Shown, shown: Option<&str>) -> String {
        match (shown, value.shown()) {
            (Some(shown), _) => shown.to_owned(),
            (None, Some(value)) => format!("`{value}`"),
            (None, None) => "none".to_owned(),
        }
    }

    /// The first paragraph of doc lines, joined.
    fn summary(lines: &[&str]) -> String {
        let words: Vec<&str> = lines
            .iter()
            .map(|line| line.trim())
            .take_while(|line| !line.is_empty())
            .collect();
        words.join(" ")
    }
}

/// The header of README.md's settings table.
const TABLE_HEADER: &str = "| variable | default | meaning |\n|---|---|---|\n";

/// README.md's settings table, one row per setting.
pub fn settings_table() -> String {
    let mut table = TABLE_HEADER.to_owned();
    for setting in settings() {
        table.push_str(&setting.table_row());
        table.push('\n');
    }
    table
}

/// A default value as an option would take it; `None` when it is unset.
trait Shown {
    fn shown(&self) -> Option<String>;
}

macro_rules! shown_by_display {
    ($($ty:ty),*) => {$(
        impl Shown for $ty {
            fn shown(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
shown_by_display!(SocketAddr, String, bool, f64, u32, usize);

impl Shown for PathBuf {
    fn shown(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl Shown for Duration {
    fn shown(&self) -> Option<String> {
        Some(show_duration(*self))
    }
}

impl Shown for RetrySchedule {
    fn shown(&self) -> Option<String> {
        let delays: Vec<String> = self.delays().iter().map(|d| show_duration(*d)).collect();
        Some(delays.join(","))
    }
}

impl Shown for LogFormat {
    fn shown(&self) -> Option<String> {
        self.to_possible_value().map(|v| v.get_name().to_owned())
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> Option<String> {
        self.as_ref().and_then(Shown::shown)
    }
}

impl<T: std::fmt::Display> Shown for Vec<T> {
    fn shown(&self) -> Option<String> {
        let items: Vec<String> = self.iter().map(ToString::to_string).collect();
        (!items.is_empty()).then(|| items.join(","))
    }
}

/// A duration in its largest whole unit ("24h", not humantime's "1day"), a
/// form the options and the file read back.
fn show_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    let ms = d.as_millis();
    let (unit, size) = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
        .into_iter()
        .find(|(_, size)| ms.is_multiple_of(*size))
        .expect("whole milliseconds");
    format!("{}{unit}", ms / size)
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
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// The sandbox limits of one plugin call.
    pub fn plugin_limits(&self) -> Limits {
        Limits {
            time: self.plugin_timeout,
            deadline: self.plugin_deadline,
            tenant_calls: self.plugin_tenant_calls,
            memory: self.plugin_memory_mib << 20,
            output: self.plugin_output_bytes,
        }
    }

    /// The bounds of one plugin compile.
    pub fn compile_limits(&self) -> CompileLimits {
        CompileLimits {
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
        if let Some(proxy) = &self.proxy {
            match url::Url::parse(proxy) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "proxy must be an http:// or https:// URL with a host, not '{proxy}'"
                    )));
                }
            }
        }
        if let Some(token) = &self.metrics_token
            && token.len() < 16
        {
            return Err(ConfigError::Invalid(
                "metrics_token must be at least 16 characters".into(),
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
        if self.plugin_tenant_calls == 0 {
            return Err(ConfigError::Invalid(
                "plugin_tenant_calls must be at least 1".into(),
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
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database_url must be a postgres:// or postgresql:// URL".into(),
            ));
        }
        if self.database_pool == 0 {
            return Err(ConfigError::Invalid(
                "database_pool must be at least 1".into(),
            ));
        }
        if self.queue_lease < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "queue_lease must be at least 1s".into(),
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
    fn database_settings_are_checked() {
        let c = Config::from_toml(
            "database_url = \"postgres://gw@db:5432/hookgate\"\ndatabase_pool = 4\nqueue_lease = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://gw@db:5432/hookgate")
        );
        assert_eq!(
            (c.database_pool, c.queue_lease),
            (4, Duration::from_secs(5))
        );
        for (args, field) in [
            (
                ServeArgs {
                    database_url: Some("mysql://db/x".into()),
                    ..Default::default()
                },
                "database_url",
            ),
            (
                ServeArgs {
                    database_pool: Some(0),
                    ..Default::default()
                },
                "database_pool",
            ),
            (
                ServeArgs {
                    queue_lease: Some(Duration::from_millis(10)),
                    ..Default::default()
                },
                "queue_lease",
            ),
        ] {
            match args.resolve() {
                Err(ConfigError::Invalid(message)) => assert!(message.contains(field), "{message}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        let args = ServeArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Invalid(_))));
    }

    /// README.md's settings table: from its header to the first line that is
    /// not a table row.
    fn readme_table(readme: &str) -> Option<String> {
        let start = readme.find(TABLE_HEADER)?;
        let rows = readme[start..]
            .lines()
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"));
        Some(rows.collect())
    }

    #[test]
    fn readme_shows_the_declared_settings() {
        let expected = settings_table();
        let found = readme_table(include_str!("../README.md"));
        assert!(
            found.as_deref() == Some(expected.as_str()),
            "README.md's settings table (under \"Configuration\") is not the one the \
             settings declared in src/config.rs make; replace it with:\n\n{expected}"
        );
    }

    fn serve_command() -> clap::Command {
        ServeArgs::augment_args(clap::Command::new("serve"))
    }

    #[test]
    fn every_setting_is_an_option_with_its_variable_and_default() {
        let command = serve_command();
        for setting in settings() {
            assert_eq!(
                setting.env,
                format!("HOOKGATE_{}", setting.name.to_uppercase())
            );
            let long = setting.name.replace('_', "-");
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .unwrap_or_else(|| panic!("no --{long}"));
            assert_eq!(arg.get_env().unwrap(), setting.env);
            let help = arg.get_help().unwrap().to_string();
            assert!(
                help.ends_with(&format!("[default: {}]", setting.default.replace('`', ""))),
                "{help}"
            );
        }
        let token = command
            .get_arguments()
            .find(|a| a.get_long() == Some("admin-token"))
            .unwrap();
        assert!(token.is_hide_env_values_set());
        // Every option but --config is a setting.
        assert_eq!(command.get_arguments().count(), settings().len() + 1);
    }

    #[test]
    fn shown_defaults_are_the_defaults() {
        let expected = format!("{:?}", Config::default());
        for setting in settings() {
            let Some(value) = setting
                .default
                .strip_prefix('`')
                .and_then(|v| v.strip_suffix('`'))
            else {
                continue;
            };
            let flag = format!("--{}={value}", setting.name.replace('_', "-"));
            let matches = serve_command()
                .try_get_matches_from(["serve", flag.as_str()])
                .unwrap_or_else(|e| panic!("{flag}: {e}"));
            let args = <ServeArgs as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
            let config = args.resolve().unwrap();
            assert_eq!(format!("{config:?}"), expected, "{flag}");
        }
    }

    #[test]
    fn target_lists_are_comma_separated() {
        let matches = serve_command()
            .try_get_matches_from(["serve", "--allow-targets=127.0.0.0/8,::1/128"])
            .unwrap();
        let args = <ServeArgs as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        let c = args.resolve().unwrap();
        assert_eq!(c.allow_targets.len(), 2);
    }
}
