//! The configuration schema: every broker and topic setting, its type, default and meaning,
//! in one table. Flags, the TOML config file, `--set key=value`, CreateTopics configs and
//! DescribeConfigs all go through it. Names follow Kafka's where Kafka has one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// The type of a setting's value, used for validation and for DescribeConfigs' config_type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    /// Non-negative integer (or -1 where `allow_unlimited`).
    Long {
        min: i64,
        allow_unlimited: bool,
    },
    Str,
    Addr,
    OneOf(&'static [&'static str]),
}

impl Kind {
    /// Kafka's DescribeConfigs config_type codes (v3+).
    pub(crate) fn type_code(self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::Long { .. } => 5,
            Kind::Str | Kind::Addr | Kind::OneOf(_) => 2,
        }
    }
}

/// One setting.
#[derive(Debug)]
pub(crate) struct Def {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) default: &'static str,
    pub(crate) doc: &'static str,
    /// The per-topic override of this broker setting, if topics may override it.
    pub(crate) topic_name: Option<&'static str>,
}

const DAY_MS: &str = "604800000";

/// Broker settings. Topic-level names are listed in `topic_name`.
pub(crate) const BROKER_DEFS: &[Def] = &[
    Def { name: "listen", kind: Kind::Addr, default: "127.0.0.1:9092", doc: "Address the Kafka listener binds to.", topic_name: None },
    Def { name: "advertise", kind: Kind::Str, default: "", doc: "HOST:PORT returned to clients in Metadata; empty means the listen address.", topic_name: None },
    Def { name: "http", kind: Kind::Str, default: "127.0.0.1:9644", doc: "Address of the admin HTTP API (pipelines, SQL); `off` disables it.", topic_name: None },
    Def { name: "data-dir", kind: Kind::Str, default: "./eddy-data", doc: "Directory holding topic metadata and partition logs.", topic_name: None },
    Def { name: "node.id", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "0", doc: "This broker's node id.", topic_name: None },
    Def { name: "num.partitions", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "1", doc: "Partitions of auto-created topics and of CreateTopics requests that don't say.", topic_name: None },
    Def { name: "auto.create.topics.enable", kind: Kind::Bool, default: "true", doc: "Create unknown topics on Metadata and Produce.", topic_name: None },
    Def { name: "log.segment.bytes", kind: Kind::Long { min: 1024, allow_unlimited: false }, default: "1073741824", doc: "Roll a new segment when the active one would exceed this size.", topic_name: Some("segment.bytes") },
    Def { name: "log.roll.ms", kind: Kind::Long { min: 1, allow_unlimited: false }, default: DAY_MS, doc: "Roll a new segment when the active one is older than this.", topic_name: Some("segment.ms") },
    Def { name: "log.retention.ms", kind: Kind::Long { min: 0, allow_unlimited: true }, default: DAY_MS, doc: "Delete segments whose newest record is older than this; -1 keeps forever.", topic_name: Some("retention.ms") },
    Def { name: "log.retention.bytes", kind: Kind::Long { min: 0, allow_unlimited: true }, default: "-1", doc: "Delete oldest segments while a partition is larger than this; -1 is unlimited.", topic_name: Some("retention.bytes") },
    Def { name: "log.retention.check.interval.ms", kind: Kind::Long { min: 10, allow_unlimited: false }, default: "300000", doc: "How often retention is enforced.", topic_name: None },
    Def { name: "log.index.interval.bytes", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "4096", doc: "Bytes of log between sparse index entries.", topic_name: Some("index.interval.bytes") },
    Def { name: "log.index.size.max.bytes", kind: Kind::Long { min: 4096, allow_unlimited: false }, default: "10485760", doc: "Maximum size of an offset index file; a full index rolls the segment.", topic_name: Some("segment.index.bytes") },
    Def { name: "message.max.bytes", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "1048588", doc: "Largest record batch accepted by Produce.", topic_name: Some("max.message.bytes") },
    Def { name: "log.message.timestamp.type", kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]), default: "CreateTime", doc: "Whether records keep the producer's timestamp or get the broker's append time.", topic_name: Some("message.timestamp.type") },
    Def { name: "log.cleanup.policy", kind: Kind::OneOf(&["delete", "compact", "compact,delete", "delete,compact"]), default: "delete", doc: "'delete': retention by time and size. 'compact': keep the latest record per key in sealed segments (no retention). Both: compaction and retention.", topic_name: Some("cleanup.policy") },
    Def { name: "log.cleaner.delete.retention.ms", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "86400000", doc: "How long the cleaner keeps a tombstone (null value) in a compacted topic, so consumers reading the topic see the delete.", topic_name: Some("delete.retention.ms") },
    Def { name: "log.cleaner.min.compaction.lag.ms", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "0", doc: "Records younger than this are not compacted yet.", topic_name: Some("min.compaction.lag.ms") },
    Def { name: "log.cleaner.backoff.ms", kind: Kind::Long { min: 10, allow_unlimited: false }, default: "15000", doc: "How often each compacted partition is checked for work for the cleaner.", topic_name: None },
    Def { name: "min.insync.replicas", kind: Kind::OneOf(&["1"]), default: "1", doc: "Eddy is single-node: always 1.", topic_name: Some("min.insync.replicas") },
    Def { name: "compression.type", kind: Kind::OneOf(&["producer"]), default: "producer", doc: "Batches are stored as the producer compressed them.", topic_name: Some("compression.type") },
    Def { name: "log.flush.interval.ms", kind: Kind::Long { min: 0, allow_unlimited: true }, default: "-1", doc: "-1 (default): acks=all is answered only after fsync. N: acks=all is answered after append and the log is fsynced every N ms.", topic_name: None },
    Def { name: "fetch.max.bytes", kind: Kind::Long { min: 1024, allow_unlimited: false }, default: "57671680", doc: "Most bytes of records one Fetch response carries, whatever the client asks for (one batch larger than this is still returned, so a consumer always progresses).", topic_name: None },
    Def { name: "socket.request.max.bytes", kind: Kind::Long { min: 1024, allow_unlimited: false }, default: "104857600", doc: "Largest request frame; larger ones close the connection.", topic_name: None },
    Def { name: "group.initial.rebalance.delay.ms", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "3000", doc: "How long the first rebalance of an empty group waits for more members to join.", topic_name: None },
    Def { name: "group.min.session.timeout.ms", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "6000", doc: "Smallest session.timeout.ms a group member may ask for.", topic_name: None },
    Def { name: "group.max.session.timeout.ms", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "1800000", doc: "Largest session.timeout.ms a group member may ask for.", topic_name: None },
    Def { name: "offsets.retention.minutes", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "10080", doc: "Committed offsets of a group that has been empty this long are deleted.", topic_name: None },
    Def { name: "transaction.max.timeout.ms", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "900000", doc: "Largest transaction.timeout.ms a transactional producer may ask for; larger requests get INVALID_TRANSACTION_TIMEOUT.", topic_name: None },
    Def { name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", kind: Kind::Long { min: 10, allow_unlimited: false }, default: "10000", doc: "How often transactions that exceeded their timeout are looked for and aborted (their producer is fenced).", topic_name: None },
    Def { name: "offset.metadata.max.bytes", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "4096", doc: "Largest metadata string allowed with a committed offset.", topic_name: None },
    Def { name: "max.connections", kind: Kind::Long { min: 1, allow_unlimited: false }, default: "10000", doc: "Connections beyond this are accepted and closed at once, with a log line.", topic_name: None },
    Def { name: "queued.max.request.bytes", kind: Kind::Long { min: 1048576, allow_unlimited: false }, default: "268435456", doc: "Broker-wide cap on bytes of requests read but not yet answered; when reached, connections stop reading (backpressure).", topic_name: None },
    Def { name: "connection.max.inflight.bytes", kind: Kind::Long { min: 1048576, allow_unlimited: false }, default: "67108864", doc: "Per-connection cap on bytes of requests read but not yet answered.", topic_name: None },
    Def { name: "shutdown.grace.ms", kind: Kind::Long { min: 0, allow_unlimited: false }, default: "5000", doc: "On SIGTERM, how long in-flight requests may take before connections are dropped.", topic_name: None },
];

/// A configuration problem, naming the key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config key '{0}'")]
    UnknownKey(String),
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

fn validate(def: &Def, value: &str) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::BadValue {
        key: def.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match def.kind {
        Kind::Bool => match value {
            "true" | "false" => Ok(value.to_string()),
            _ => Err(bad("expected true or false".into())),
        },
        Kind::Long {
            min,
            allow_unlimited,
        } => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| bad("expected an integer".into()))?;
            if n == -1 && allow_unlimited {
                return Ok(n.to_string());
            }
            if n < min {
                let also = if allow_unlimited { " (or -1)" } else { "" };
                return Err(bad(format!("must be at least {min}{also}")));
            }
            Ok(n.to_string())
        }
        Kind::Str => Ok(value.to_string()),
        Kind::Addr => value
            .parse::<SocketAddr>()
            .map(|a| a.to_string())
            .map_err(|_| bad("expected HOST:PORT with an IP address, e.g. 127.0.0.1:9092".into())),
        Kind::OneOf(options) => {
            if options.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(bad(format!("expected one of: {}", options.join(", "))))
            }
        }
    }
}

/// Validated broker settings: every key of [`BROKER_DEFS`] has a value.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    values: BTreeMap<&'static str, String>,
    /// Keys set explicitly (file, flag or --set), for DescribeConfigs' config_source.
    explicit: Vec<&'static str>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            values: BROKER_DEFS
                .iter()
                .map(|d| (d.name, d.default.to_string()))
                .collect(),
            explicit: Vec::new(),
        }
    }
}

impl BrokerConfig {
    /// Sets one key after validating its value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let def = BROKER_DEFS
            .iter()
            .find(|d| d.name == key)
            .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
        let v = validate(def, value)?;
        self.values.insert(def.name, v);
        if !self.explicit.contains(&def.name) {
            self.explicit.push(def.name);
        }
        Ok(())
    }

    /// Applies a `key=value` pair as given to `--set`.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (k, v) = pair.split_once('=').ok_or_else(|| ConfigError::BadValue {
            key: pair.to_string(),
            value: String::new(),
            reason: "expected key=value".into(),
        })?;
        self.set(k.trim(), v.trim())
    }

    /// Applies a TOML config file. Nested tables are flattened to dotted keys, so both
    /// `"log.retention.ms" = 1000` and `[log.retention]\nms = 1000` work.
    pub fn apply_toml(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_string(),
                reason: e.message().to_string(),
            })?;
        let mut flat = Vec::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        for (k, v) in flat {
            self.set(&k, &v)?;
        }
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains(&key)
    }

    pub(crate) fn long(&self, key: &str) -> i64 {
        self.get(key).parse().unwrap_or(-1)
    }

    pub(crate) fn bool(&self, key: &str) -> bool {
        self.get(key) == "true"
    }

    pub(crate) fn listen(&self) -> SocketAddr {
        self.get("listen")
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9092)))
    }

    /// Where the admin HTTP API listens; `None` when it is off.
    pub(crate) fn http(&self) -> Option<SocketAddr> {
        self.get("http").parse().ok()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.get("data-dir"))
    }

    /// The (host, port) clients are told to connect to.
    pub(crate) fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        let adv = self.get("advertise");
        if let Some((h, p)) = adv.rsplit_once(':') {
            if let Ok(port) = p.parse::<u16>() {
                return (h.trim_matches(['[', ']']).to_string(), i32::from(port));
            }
        }
        (bound.ip().to_string(), i32::from(bound.port()))
    }

    /// All broker settings, for DescribeConfigs.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'static Def, &str)> {
        BROKER_DEFS.iter().map(move |d| (d, self.get(d.name)))
    }

    /// Validates cross-key constraints that a single value can't express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let adv = self.get("advertise");
        if !adv.is_empty() {
            let ok = adv
                .rsplit_once(':')
                .map(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError::BadValue {
                    key: "advertise".into(),
                    value: adv.into(),
                    reason: "expected HOST:PORT".into(),
                });
            }
        }
        let http = self.get("http");
        if http != "off" && http.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::BadValue {
                key: "http".into(),
                value: http.into(),
                reason: "expected IP:PORT or off".into(),
            });
        }
        if self.get("data-dir").is_empty() {
            return Err(ConfigError::BadValue {
                key: "data-dir".into(),
                value: String::new(),
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Topic-level settings: the subset of [`BROKER_DEFS`] with a `topic_name`.
pub(crate) fn topic_def(name: &str) -> Option<&'static Def> {
    BROKER_DEFS.iter().find(|d| d.topic_name == Some(name))
}

pub(crate) fn topic_defs() -> impl Iterator<Item = &'static Def> {
    BROKER_DEFS.iter().filter(|d| d.topic_name.is_some())
}

/// Validates a topic-level override, returning the normalised value.
pub(crate) fn validate_topic_config(name: &str, value: &str) -> Result<String, ConfigError> {
    let def = topic_def(name).ok_or_else(|| ConfigError::UnknownKey(name.to_string()))?;
    validate(def, value).map_err(|e| match e {
        ConfigError::BadValue { value, reason, .. } => ConfigError::BadValue {
            key: name.to_string(),
            value,
            reason,
        },
        other => other,
    })
}

/// The effective value of topic setting `name` given the topic's overrides.
pub(crate) fn topic_value<'a>(
    broker: &'a BrokerConfig,
    overrides: &'a BTreeMap<String, String>,
    name: &str,
) -> &'a str {
    if let Some(v) = overrides.get(name) {
        return v;
    }
    topic_def(name).map(|d| broker.get(d.name)).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        for d in BROKER_DEFS {
            if d.default.is_empty() {
                continue;
            }
            validate(d, d.default).unwrap_or_else(|e| panic!("default of {}: {e}", d.name));
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut c = BrokerConfig::default();
        let e = c.set("num.partitions", "zero").expect_err("must fail");
        assert!(e.to_string().contains("num.partitions"), "{e}");
        assert!(matches!(
            c.set("nope", "1"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(c.set("listen", "localhost").is_err());
        c.set("log.retention.ms", "-1").expect("unlimited ok");
    }

    #[test]
    fn toml_nested_and_dotted() {
        let mut c = BrokerConfig::default();
        c.apply_toml(
            "x",
            "listen = \"127.0.0.1:1234\"\n\"num.partitions\" = 3\n[log.retention]\nms = 5000\n",
        )
        .expect("parse");
        assert_eq!(c.get("listen"), "127.0.0.1:1234");
        assert_eq!(c.long("num.partitions"), 3);
        assert_eq!(c.long("log.retention.ms"), 5000);
    }

    #[test]
    fn topic_overrides() {
        let c = BrokerConfig::default();
        let mut o = BTreeMap::new();
        assert_eq!(topic_value(&c, &o, "retention.ms"), DAY_MS);
        o.insert("retention.ms".to_string(), "10".to_string());
        assert_eq!(topic_value(&c, &o, "retention.ms"), "10");
        assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("segment.bytes", "100").is_err());
    }
}
