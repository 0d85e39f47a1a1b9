//! Settings of `oomtrace run` and `oomtrace trace`: a TOML file (`--config`), `OOMTRACE_*`
//! environment variables and flags, flags winning over the environment, both over the file.
//!
//! Everything is checked before anything is attached: an unknown key, a value of the wrong type,
//! a bad address or an output that cannot be opened is one [`ConfigError`] line naming the key,
//! and `main` exits 2 on it (as clap does for bad flags). See `deploy/config.example.toml`.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::Deserialize;

use crate::probes::{DEFAULT_RING_SIZE, HookChoice};

/// Address of the metrics endpoint when it is enabled without one.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";
/// Distinct label sets of `oomtrace_oom_kills_total` kept before new ones fold into
/// `pod="_other"`.
pub const DEFAULT_MAX_SERIES: usize = 1000;
/// Events each output may hold while it cannot write (a stalled stdout, a slow disk) before new
/// ones are dropped and counted: 4096 events take about 4 MiB (an event is about 1 KiB in
/// memory, more with long cgroup paths).
pub const DEFAULT_QUEUE_SIZE: usize = 4096;

/// A bad setting: `main` prints it as one line and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Unknown key or wrong type in the file: `key` is the line's key.
    #[error("config {path}: line {line}: key `{key}`: {msg}")]
    File {
        path: PathBuf,
        line: usize,
        key: String,
        msg: String,
    },
    /// A value that parsed but is not acceptable; `key` names where it came from (the file's
    /// key, the flag or the variable).
    #[error("{key}: {msg}")]
    Value { key: String, msg: String },
    #[error("output {spec}: opening {path}: {source}")]
    Output {
        spec: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metrics address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub ring_size: Option<u32>,
    /// Events queued per output (see [`DEFAULT_QUEUE_SIZE`]).
    pub queue_size: Option<usize>,
    pub hooks: Option<String>,
    pub outputs: Option<Vec<String>>,
    pub metrics: Option<MetricsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Enables the endpoint on this address.
    pub addr: Option<String>,
    pub max_series: Option<usize>,
    /// `/healthz` answers 503 once the drain loop has been busy this long (`"30s"`).
    pub healthz_stall: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start).min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let src = text.lines().nth(line - 1).unwrap_or("").trim();
            // The key is what stands before `=` on that line (or the table header).
            let key = src
                .split_once('=')
                .map_or(src, |(k, _)| k)
                .trim()
                .trim_matches(['[', ']'])
                .to_string();
            ConfigError::File {
                path: path.to_path_buf(),
                line,
                key,
                msg: e.message().replace('\n', " "),
            }
        })
    }
}

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
    /// Appended to, created if missing.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// `FORMAT:TARGET`: `json:stdout`, `text:stderr`, `json:/var/log/oomtrace.jsonl`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: Format,
    pub target: Target,
}

impl FromStr for OutputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (f, t) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected FORMAT:TARGET (e.g. json:stdout)"))?;
        let format = match f {
            "json" => Format::Json,
            "text" => Format::Text,
            _ => return Err(format!("{s:?}: format {f:?} is not json or text")),
        };
        let target = match t {
            "" => {
                return Err(format!(
                    "{s:?}: empty target (stdout, stderr or a file path)"
                ));
            }
            "stdout" | "-" => Target::Stdout,
            "stderr" => Target::Stderr,
            p => Target::File(p.into()),
        };
        Ok(Self { format, target })
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.format {
            Format::Json => "json",
            Format::Text => "text",
        };
        match &self.target {
            Target::Stdout => write!(f, "{format}:stdout"),
            Target::Stderr => write!(f, "{format}:stderr"),
            Target::File(p) => write!(f, "{format}:{}", p.display()),
        }
    }
}

/// The metrics endpoint, when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub addr: SocketAddr,
    pub max_series: usize,
    /// `/healthz` says 503 when the drain loop has been busy (not back to waiting on the ring)
    /// for longer than this.
    pub healthz_stall: std::time::Duration,
}

/// What flags and environment gave (clap merges those two; `None` = neither).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub ring_size: Option<u32>,
    pub queue_size: Option<usize>,
    pub hooks: Option<HookChoice>,
    pub outputs: Vec<OutputSpec>,
    pub metrics_addr: Option<String>,
    pub max_series: Option<usize>,
    pub healthz_stall: Option<std::time::Duration>,
}

/// Settings after merging, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ring_size: u32,
    /// Events each output may hold in memory while it cannot write; at least 1.
    pub queue_size: usize,
    pub hooks: HookChoice,
    /// Never empty: `json:stdout` when nothing was asked for.
    pub outputs: Vec<OutputSpec>,
    pub metrics: Option<MetricsSettings>,
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|e| ConfigError::Value {
        key: key.into(),
        msg: format!("{s:?} is not an IP:PORT address ({e})"),
    })
}

impl Settings {
    /// Flags/environment over the file over the defaults.
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Self, ConfigError> {
        let ring_size = o.ring_size.or(file.ring_size).unwrap_or(DEFAULT_RING_SIZE);
        if !ring_size.is_power_of_two() || ring_size < 4096 {
            return Err(ConfigError::Value {
                key: "ring_size".into(),
                msg: format!("{ring_size} must be a power of two and at least 4096 bytes"),
            });
        }
        let queue_size = o
            .queue_size
            .or(file.queue_size)
            .unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size == 0 {
            return Err(ConfigError::Value {
                key: "queue_size".into(),
                msg: "must be at least 1 event".into(),
            });
        }
        let hooks = match (o.hooks, &file.hooks) {
            (Some(h), _) => h,
            (None, Some(s)) => s.parse().map_err(|msg| ConfigError::Value {
                key: "hooks".into(),
                msg,
            })?,
            (None, None) => HookChoice::default(),
        };
        let outputs = if o.outputs.is_empty() {
            match file.outputs {
                Some(list) => list
                    .iter()
                    .map(|s| {
                        s.parse().map_err(|msg| ConfigError::Value {
                            key: "outputs".into(),
                            msg,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            }
        } else {
            o.outputs
        };
        let outputs = if outputs.is_empty() {
            vec![OutputSpec {
                format: Format::Json,
                target: Target::Stdout,
            }]
        } else {
            outputs
        };
        let fm = file.metrics.unwrap_or_default();
        let addr = match (o.metrics_addr, fm.addr) {
            (Some(a), _) => Some(parse_addr("--metrics-addr", &a)?),
            (None, Some(a)) => Some(parse_addr("metrics.addr", &a)?),
            (None, None) => None,
        };
        let max_series = o.max_series.or(fm.max_series).unwrap_or(DEFAULT_MAX_SERIES);
        if max_series == 0 {
            return Err(ConfigError::Value {
                key: "metrics.max_series".into(),
                msg: "must be at least 1".into(),
            });
        }
        let healthz_stall = match (o.healthz_stall, fm.healthz_stall) {
            (Some(d), _) => d,
            (None, Some(s)) => parse_duration(&s).map_err(|msg| ConfigError::Value {
                key: "metrics.healthz_stall".into(),
                msg,
            })?,
            (None, None) => crate::health::DEFAULT_STALL,
        };
        if healthz_stall.is_zero() {
            return Err(ConfigError::Value {
                key: "metrics.healthz_stall".into(),
                msg: "must be longer than 0".into(),
            });
        }
        Ok(Self {
            ring_size,
            queue_size,
            hooks,
            outputs,
            metrics: addr.map(|addr| MetricsSettings {
                addr,
                max_series,
                healthz_stall,
            }),
        })
    }

    /// Loads `path` (if any) and merges.
    pub fn load(path: Option<&Path>, o: Overrides) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, o)
    }
}

/// Parses `5m`, `30s`, `1h`, `250ms` or plain seconds (`90`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit (ms, s, m, h), e.g. 5m"))?;
    let d = std::time::Duration::from_millis;
    Ok(match unit {
        "ms" => d(n),
        "" | "s" => d(n.saturating_mul(1000)),
        "m" => d(n.saturating_mul(60_000)),
        "h" => d(n.saturating_mul(3_600_000)),
        u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m, h)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("c.toml"), t)
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../deploy/config.example.toml");
        let s = Settings::resolve(parse(text).unwrap(), Overrides::default()).unwrap();
        assert_eq!(s.outputs.len(), 2);
        assert_eq!(
            s.metrics.unwrap().addr,
            DEFAULT_METRICS_ADDR.parse().unwrap()
        );
    }

    #[test]
    fn unknown_key_and_wrong_type_name_the_key() {
        let e = parse("ring_size = 8192\nfoo = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`foo`"), "{e}");
        assert!(!e.contains('\n'));
        let e = parse("ring_size = \"big\"\n").unwrap_err().to_string();
        assert!(e.contains("`ring_size`") && e.contains("line 1"), "{e}");
        let e = parse("[metrics]\nadress = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`adress`"), "{e}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = parse(
            "ring_size = 8192\noutputs = [\"text:stderr\"]\n[metrics]\naddr = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let s = Settings::resolve(
            f,
            Overrides {
                ring_size: Some(16384),
                metrics_addr: Some("127.0.0.1:2".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.ring_size, 16384);
        assert_eq!(s.metrics.unwrap().addr.port(), 2);
        assert_eq!(s.outputs[0].to_string(), "text:stderr");
        let s = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.outputs[0].to_string(), "json:stdout");
        assert!(s.metrics.is_none(), "metrics are off by default");
        assert_eq!(s.queue_size, DEFAULT_QUEUE_SIZE);
        let f = parse("queue_size = 10\n").unwrap();
        let o = Overrides {
            queue_size: Some(20),
            ..Overrides::default()
        };
        assert_eq!(Settings::resolve(f, o).unwrap().queue_size, 20);
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad = |t: &str| Settings::resolve(parse(t).unwrap(), Overrides::default());
        assert!(
            bad("ring_size = 5000")
                .unwrap_err()
                .to_string()
                .contains("ring_size")
        );
        let e = bad("[metrics]\naddr = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.addr"), "{e}");
        let e = bad("outputs = [\"xml:stdout\"]").unwrap_err().to_string();
        assert!(e.contains("outputs"), "{e}");
        let e = bad("hooks = \"victim=kmsg\"").unwrap_err().to_string();
        assert!(e.contains("hooks"), "{e}");
        let e = bad("queue_size = 0").unwrap_err().to_string();
        assert!(e.contains("queue_size"), "{e}");
        let e = bad("[metrics]\naddr = \"127.0.0.1:1\"\nhealthz_stall = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.healthz_stall"), "{e}");
        let s = bad("[metrics]\naddr = \"127.0.0.1:1\"\nhealthz_stall = \"90s\"\n").unwrap();
        assert_eq!(s.metrics.unwrap().healthz_stall.as_secs(), 90);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("m").is_err());
    }
}
