//! Tokens minted on request, for tests: valid ones, and ones with a deliberate defect the gate
//! must refuse.

use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::Emulator;
use crate::counters::inc;
use crate::jwt::{self, REDIS_AUDIENCE};

/// An access token minted by [`Emulator::mint_token`]. `Debug` does not show the token.
#[derive(Clone)]
pub struct MintedToken {
    /// The `oid` claim (the Redis username), or the oid it was minted for when the token
    /// deliberately lacks the claim.
    pub oid: String,
    /// The `exp` claim, in Unix seconds.
    pub expires_on: i64,
    token: SecretString,
}

impl MintedToken {
    /// The compact JWT.
    pub fn secret(&self) -> &str {
        self.token.expose_secret()
    }
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("oid", &self.oid)
            .field("expires_on", &self.expires_on)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// A deliberate defect of a minted token, for negative tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFlaw {
    /// The signature does not match (one signature byte altered).
    BadSignature,
    /// `exp` lies in the past.
    Expired,
    /// `nbf` lies in the future.
    NotYetValid,
    /// The audience is another resource (`https://vault.azure.net`).
    WrongAudience,
    /// No `oid` claim.
    NoOid,
    /// Signed by a key the emulator does not trust (header `alg` is `none`, no signature).
    Unsigned,
}

impl Emulator {
    /// Mints a valid access token for `oid` (audience `https://redis.azure.com`).
    pub fn mint_token(&self, oid: &str, lifetime: Duration) -> MintedToken {
        let tenant = self.tenant_id();
        let (token, exp) = self
            .identity
            .mint(oid, &tenant, None, REDIS_AUDIENCE, lifetime);
        MintedToken {
            oid: oid.to_string(),
            expires_on: exp,
            token: SecretString::from(token),
        }
    }

    /// Mints a token for `oid` with a deliberate defect; the gate must refuse it.
    pub fn mint_flawed_token(&self, oid: &str, flaw: TokenFlaw) -> MintedToken {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tenant = self.tenant_id();
        let now = jwt::now_unix() as i64;
        let mut claims = json!({
            "aud": REDIS_AUDIENCE,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": oid,
            "sub": oid,
            "tid": tenant,
            "ver": "1.0",
        });
        match flaw {
            TokenFlaw::Expired => {
                claims["iat"] = json!(now - 7200);
                claims["nbf"] = json!(now - 7200);
                claims["exp"] = json!(now - 60);
            }
            TokenFlaw::NotYetValid => claims["nbf"] = json!(now + 1800),
            TokenFlaw::WrongAudience => claims["aud"] = json!("https://vault.azure.net"),
            TokenFlaw::NoOid => {
                if let Some(m) = claims.as_object_mut() {
                    m.remove("oid");
                }
            }
            TokenFlaw::BadSignature | TokenFlaw::Unsigned => {}
        }
        let expires_on = claims["exp"].as_i64().unwrap_or(now);
        let mut token = self.identity.key.sign(&claims);
        match flaw {
            TokenFlaw::BadSignature => {
                // Alter one full base64 character of the signature.
                let mut bytes = token.into_bytes();
                let i = bytes.len().saturating_sub(10);
                if let Some(b) = bytes.get_mut(i) {
                    *b = if *b == b'A' { b'B' } else { b'A' };
                }
                token = String::from_utf8_lossy(&bytes).into_owned();
            }
            TokenFlaw::Unsigned => {
                let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
                let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
                token = format!("{header}.{payload}.");
            }
            _ => {}
        }
        inc(&self.identity.counters.tokens_minted);
        tracing::info!(oid, exp = expires_on, ?flaw, "flawed token minted");
        MintedToken {
            oid: oid.to_string(),
            expires_on,
            token: SecretString::from(token),
        }
    }
}
