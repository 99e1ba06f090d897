//! The StackExchange.Redis syntax: `host:6380,password=KEY,ssl=True,defaultDatabase=0`, its
//! keywords, and the did-you-mean for a key it does not know.

use secrecy::SecretString;

use super::{
    ConnectionString, ConnectionStringError, ConnectionStringErrorKind, Syntax, endpoint, err,
};
use crate::config::endpoint::{Service, split_host_port};

/// A boolean as StackExchange.Redis reads one (`Format.TryParseBoolean`): `true` / `false`,
/// `yes` / `no`, `on` / `off`, `1` / `0`, in any case.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// What a StackExchange.Redis option does here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Password,
    User,
    Ssl,
    SslHost,
    DefaultDatabase,
    /// Known to StackExchange.Redis, meaningless here.
    Ignored,
}

/// Every keyword of StackExchange.Redis's `ConfigurationOptions.OptionKeys`, spelt as there;
/// the [module docs](self) say why each ignored one is.
const STACKEXCHANGE_KEYS: &[(&str, Use)] = &[
    ("password", Use::Password),
    ("user", Use::User),
    ("ssl", Use::Ssl),
    ("sslHost", Use::SslHost),
    ("defaultDatabase", Use::DefaultDatabase),
    ("abortConnect", Use::Ignored),
    ("allowAdmin", Use::Ignored),
    ("asyncTimeout", Use::Ignored),
    ("channelPrefix", Use::Ignored),
    ("checkCertificateRevocation", Use::Ignored),
    ("configChannel", Use::Ignored),
    ("configCheckSeconds", Use::Ignored),
    ("connectRetry", Use::Ignored),
    ("connectTimeout", Use::Ignored),
    ("highIntegrity", Use::Ignored),
    ("keepAlive", Use::Ignored),
    ("name", Use::Ignored),
    ("protocol", Use::Ignored),
    ("proxy", Use::Ignored),
    ("resolveDns", Use::Ignored),
    ("sentinelPassword", Use::Ignored),
    ("sentinelUser", Use::Ignored),
    ("serviceName", Use::Ignored),
    ("setlib", Use::Ignored),
    ("sslProtocols", Use::Ignored),
    ("syncTimeout", Use::Ignored),
    ("tcpKeepAlive", Use::Ignored),
    ("tiebreaker", Use::Ignored),
    ("tunnel", Use::Ignored),
    ("version", Use::Ignored),
    // Deprecated; StackExchange.Redis ignores them too.
    ("highPriorityThreads", Use::Ignored),
    ("preserveAsyncOrder", Use::Ignored),
    ("responseTimeout", Use::Ignored),
    ("writeBuffer", Use::Ignored),
];

/// Names other clients use, and the StackExchange keyword that means the same.
const OTHER_CLIENTS_NAMES: &[(&str, &str)] = &[
    ("username", "user"),
    ("pwd", "password"),
    ("passwd", "password"),
    ("tls", "ssl"),
    ("db", "defaultDatabase"),
    ("database", "defaultDatabase"),
];

/// The longest key shown in an error: every keyword is shorter, every base64 access key longer.
const MAX_SHOWN_KEY: usize = 32;

/// The error for a key StackExchange.Redis does not know.
fn unknown_key(key: &str) -> ConnectionStringErrorKind {
    let shown = (key.len() <= MAX_SHOWN_KEY && key.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| key.to_owned());
    ConnectionStringErrorKind::UnknownOption {
        key: shown,
        suggestion: did_you_mean(key),
    }
}

/// The keyword `key` most likely means: another client's name for it, or a keyword within a
/// slip of the keyboard (an edit per three letters, at least one).
fn did_you_mean(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    if let Some(&(_, keyword)) = OTHER_CLIENTS_NAMES.iter().find(|(name, _)| *name == key) {
        return Some(keyword);
    }
    let limit = (key.chars().count() / 3).max(1);
    STACKEXCHANGE_KEYS
        .iter()
        .map(|(keyword, _)| {
            (
                strsim::osa_distance(&key, &keyword.to_ascii_lowercase()),
                *keyword,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, keyword)| keyword)
}

pub(super) fn parse_stackexchange(input: &str) -> Result<ConnectionString, ConnectionStringError> {
    let mut host: Option<(String, Option<u16>)> = None;
    let mut tls = None;
    let mut database = 0;
    let mut username = None;
    let mut password = None;
    let mut tls_server_name = None;
    let mut offset = 0;
    for part in input.split(',') {
        let start = offset;
        offset += part.len() + 1;
        let position = start + (part.len() - part.trim_start().len());
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            if host.is_some() {
                return Err(err(ConnectionStringErrorKind::SeveralEndpoints, position));
            }
            let parsed = split_host_port(part)
                .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), position))?;
            host = Some(parsed);
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key.is_empty() {
            return Err(err(ConnectionStringErrorKind::EmptyOptionKey, position));
        }
        // `$COMMAND=NAME` renames a command in StackExchange.Redis.
        if key.starts_with('$') {
            continue;
        }
        let Some(&(option, use_)) = STACKEXCHANGE_KEYS
            .iter()
            .find(|(option, _)| option.eq_ignore_ascii_case(key))
        else {
            return Err(err(unknown_key(key), position));
        };
        let bad = |expected| {
            err(
                ConnectionStringErrorKind::BadOptionValue { option, expected },
                position,
            )
        };
        match use_ {
            Use::Password => {
                password = Some(value)
                    .filter(|p| !p.is_empty())
                    .map(SecretString::from)
            }
            Use::User => username = Some(value.to_owned()).filter(|u| !u.is_empty()),
            Use::Ssl => {
                tls = Some(parse_bool(value).ok_or_else(|| {
                    bad("a boolean (`true`, `false`, `yes`, `no`, `on`, `off`, `1` or `0`)")
                })?);
            }
            Use::DefaultDatabase => {
                database = value
                    .parse::<i64>()
                    .ok()
                    .filter(|db| *db >= 0)
                    .ok_or_else(|| bad("a database number"))?;
            }
            Use::SslHost => tls_server_name = Some(value.to_owned()).filter(|h| !h.is_empty()),
            Use::Ignored => {}
        }
    }
    let Some((host, port)) = host else {
        return Err(err(ConnectionStringErrorKind::MissingHost, 0));
    };
    // StackExchange defaults to no TLS; Azure's hosts accept Entra ID only over TLS, and
    // Service Connector always writes `ssl=True`, so a missing `ssl` follows the host.
    let tls = tls.unwrap_or(Service::of_host(&host) != Service::Other);
    Ok(ConnectionString {
        endpoint: endpoint(host, port, tls, database, tls_server_name),
        // Without a password no AUTH is sent, and a user name alone means nothing.
        username: username.filter(|_| password.is_some()),
        password,
        syntax: Syntax::StackExchange,
    })
}
