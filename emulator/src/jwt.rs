//! RS256 JSON Web Tokens: minting with the emulator's key and validating like Azure does.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value, json};

use crate::error::EmulatorError;

/// The audience Azure Cache for Redis accepts, as a URI.
pub const REDIS_AUDIENCE: &str = "https://redis.azure.com";
/// The audience Azure Cache for Redis accepts, as an application id.
pub const REDIS_APP_ID: &str = "acca5fbb-b7e4-4009-81f1-37e38fd66d78";
/// The audience of a federated (workload identity) token.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Seconds since the Unix epoch, as a float.
pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An RSA-2048 key that signs every token of this process.
///
/// Generating an RSA key takes seconds in an unoptimised build, so one key is made per process
/// (lazily, on first use) and shared by every emulator of that process.
pub(crate) struct KeyMaterial {
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
    kid: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

static PROCESS_KEY: OnceLock<Arc<KeyMaterial>> = OnceLock::new();
static KEY_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl KeyMaterial {
    /// Returns the process-wide key, generating it on first use (blocking).
    pub(crate) fn process_key() -> Result<Arc<KeyMaterial>, EmulatorError> {
        if let Some(k) = PROCESS_KEY.get() {
            return Ok(k.clone());
        }
        // Serialise generation so that two emulators starting at once do not both pay for it.
        let _guard = KEY_INIT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = PROCESS_KEY.get() {
            return Ok(k.clone());
        }
        let key = Arc::new(Self::generate()?);
        Ok(PROCESS_KEY.get_or_init(|| key).clone())
    }

    fn generate() -> Result<Self, EmulatorError> {
        let started = std::time::Instant::now();
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| EmulatorError::Key(e.to_string()))?;
        let public = private.to_public_key();
        let mut hasher = Sha256::new();
        hasher.update(public.n().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&hasher.finalize()[..20]);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "generated RS256 signing key"
        );
        Ok(Self {
            signing: SigningKey::<Sha256>::new(private),
            verifying: VerifyingKey::<Sha256>::new(public.clone()),
            public,
            kid,
        })
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        })
    }

    /// Signs `claims` as a compact JWS with the given header fields added to `alg`/`typ`/`kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// Checks the structure, algorithm and signature of `token` and returns its claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Map<String, Value>, Rejection> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let header: Value = decode_json(h).ok_or(Rejection::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(Rejection::Algorithm);
        }
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| Rejection::Malformed)?;
        let sig = Signature::try_from(sig_bytes.as_slice()).map_err(|_| Rejection::Signature)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        self.verifying
            .verify(signing_input.as_bytes(), &sig)
            .map_err(|_| Rejection::Signature)?;
        match decode_json(p) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(Rejection::Malformed),
        }
    }
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Why a token (or an AUTH) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    Malformed,
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
    Audience,
    Issuer,
    Subject,
    MissingOid,
    UsernameMismatch,
    WrongPassword,
    Injected,
}

impl Rejection {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed token",
            Rejection::Algorithm => "token algorithm is not RS256",
            Rejection::Signature => "bad token signature",
            Rejection::Expired => "token expired",
            Rejection::NotYetValid => "token not yet valid",
            Rejection::Audience => "wrong audience",
            Rejection::Issuer => "wrong issuer",
            Rejection::Subject => "wrong subject",
            Rejection::MissingOid => "token has no oid claim",
            Rejection::UsernameMismatch => "username is not the token's oid",
            Rejection::WrongPassword => "wrong password",
            Rejection::Injected => "rejected by fault injection",
        }
    }
}

/// Numeric claim as i64 (accepts integers and floats).
pub(crate) fn num_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// True when the `aud` claim (a string or an array of strings) contains one of `accepted`.
pub(crate) fn audience_matches(claims: &Map<String, Value>, accepted: &[&str]) -> bool {
    let matches = |s: &str| {
        let s = s.trim_end_matches('/');
        accepted.iter().any(|a| a.eq_ignore_ascii_case(s))
    };
    match claims.get("aud") {
        Some(Value::String(s)) => matches(s),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

/// Checks `exp` and `nbf` against the current time; returns `exp`.
pub(crate) fn check_times(claims: &Map<String, Value>, now: f64) -> Result<i64, Rejection> {
    let exp = num_claim(claims, "exp").ok_or(Rejection::Malformed)?;
    if (exp as f64) <= now {
        return Err(Rejection::Expired);
    }
    if let Some(nbf) = num_claim(claims, "nbf")
        && (nbf as f64) > now
    {
        return Err(Rejection::NotYetValid);
    }
    Ok(exp)
}

/// A validated access token: who and until when.
#[derive(Clone, Debug)]
pub(crate) struct ValidToken {
    pub(crate) oid: String,
    pub(crate) exp: i64,
}

/// Validates an access token for Azure Cache for Redis.
pub(crate) fn validate_access_token(
    key: &KeyMaterial,
    token: &str,
) -> Result<ValidToken, Rejection> {
    let claims = key.verify(token)?;
    let exp = check_times(&claims, now_unix())?;
    if !audience_matches(&claims, &[REDIS_AUDIENCE, REDIS_APP_ID]) {
        return Err(Rejection::Audience);
    }
    let oid = claims
        .get("oid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::MissingOid)?;
    Ok(ValidToken {
        oid: oid.to_string(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = KeyMaterial::process_key().expect("key");
        let now = now_unix() as i64;
        let t = key.sign(&json!({"oid": "o1", "aud": REDIS_AUDIENCE, "exp": now + 60, "nbf": now}));
        let v = validate_access_token(&key, &t).expect("valid");
        assert_eq!(v.oid, "o1");
        assert_eq!(v.exp, now + 60);

        let t = key.sign(&json!({"oid": "o1", "aud": [REDIS_APP_ID], "exp": now + 60}));
        assert!(validate_access_token(&key, &t).is_ok());

        let t = key.sign(&json!({"oid": "o1", "aud": "https://vault.azure.net", "exp": now + 60}));
        assert_eq!(
            validate_access_token(&key, &t).unwrap_err(),
            Rejection::Audience
        );

        let t = key.sign(&json!({"oid": "o1", "aud": REDIS_AUDIENCE, "exp": now - 1}));
        assert_eq!(
            validate_access_token(&key, &t).unwrap_err(),
            Rejection::Expired
        );

        let t = key.sign(&json!({"aud": REDIS_AUDIENCE, "exp": now + 60}));
        assert_eq!(
            validate_access_token(&key, &t).unwrap_err(),
            Rejection::MissingOid
        );

        let t = key
            .sign(&json!({"oid": "o1", "aud": REDIS_AUDIENCE, "exp": now + 60, "nbf": now + 30}));
        assert_eq!(
            validate_access_token(&key, &t).unwrap_err(),
            Rejection::NotYetValid
        );
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        let key = KeyMaterial::process_key().expect("key");
        for t in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "\u{fffd}.\u{0}.x",
            "eyJhbGciOiJSUzI1NiJ9.e30.",
        ] {
            assert!(validate_access_token(&key, t).is_err(), "{t}");
        }
        let now = now_unix() as i64;
        let t = key.sign(&json!({"oid": "o1", "aud": REDIS_AUDIENCE, "exp": now + 60}));
        let mut bytes = t.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(bytes).expect("ascii");
        assert_eq!(
            validate_access_token(&key, &t).unwrap_err(),
            Rejection::Signature
        );
    }
}
