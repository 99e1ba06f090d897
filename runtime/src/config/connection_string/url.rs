//! The URL syntax: `rediss://:KEY@host:6380/0`, with the user-part rule of the
//! [module docs](super).

use secrecy::SecretString;

use super::{
    ConnectionString, ConnectionStringError, ConnectionStringErrorKind, Syntax, endpoint, err,
};
use crate::config::endpoint::split_host_port;

pub(super) fn parse_url(
    input: &str,
    scheme: &str,
    base: usize,
) -> Result<ConnectionString, ConnectionStringError> {
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "rediss" => true,
        "redis" => false,
        _ => return Err(err(ConnectionStringErrorKind::UnknownScheme, base)),
    };
    let rest_start = scheme.len() + 3;
    let rest = &input[rest_start..];
    // The user part ends at the one `@` before the query or fragment; see the module docs.
    let before_query = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (userinfo, authority_start) = match before_query.rfind('@') {
        Some(at) => {
            if let Some(first) = before_query[..at].find('@') {
                return Err(err(
                    ConnectionStringErrorKind::SeveralAts,
                    base + rest_start + first,
                ));
            }
            (Some(&rest[..at]), at + 1)
        }
        None => (None, 0),
    };
    let after_user = &rest[authority_start..];
    let authority_len = after_user.find(['/', '?', '#']).unwrap_or(after_user.len());
    let authority = &after_user[..authority_len];
    let authority_pos = base + rest_start + authority_start;
    if authority.is_empty() {
        return Err(err(ConnectionStringErrorKind::MissingHost, authority_pos));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), authority_pos))?;

    let tail = &after_user[authority_len..];
    let path_len = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_len];
    let path_pos = authority_pos + authority_len;
    let database = match path.strip_prefix('/') {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| err(ConnectionStringErrorKind::BadDatabase, path_pos))?,
    };

    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let user_pos = base + rest_start;
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| err(ConnectionStringErrorKind::BadEscape, user_pos))
            };
            // `redis://KEY@host`: a lone user part is taken as the password, so that a key
            // written without its `:` is never shown as a user name.
            let (user, pass) = match userinfo.split_once(':') {
                Some((user, pass)) => (decode(user)?, decode(pass)?),
                None => (String::new(), decode(userinfo)?),
            };
            if pass.is_empty() {
                // `rediss://KEY:@host`: the "user name" is most likely the key.
                (None, None)
            } else {
                (
                    Some(user).filter(|u| !u.is_empty()),
                    Some(SecretString::from(pass)),
                )
            }
        }
    };
    Ok(ConnectionString {
        endpoint: endpoint(host, port, tls, database, None),
        username,
        password,
        syntax: Syntax::Url,
    })
}

/// Decodes `%XX` escapes; `None` for a `%` without two hex digits or bytes that are not UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
