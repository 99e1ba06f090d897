//! What the gate knows about one client connection, and how it rewrites `AUTH`, `HELLO`,
//! `RESET` and the subscription commands.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::GateState;
use super::pre_auth::UnauthSlot;
use crate::resp::{Command, Intercept, encode_command, string2ll};

/// What the gate knows about one client connection.
pub(super) struct Session {
    pub(super) conn_id: u64,
    authenticated: bool,
    resp3: bool,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    deadline: watch::Sender<Option<Instant>>,
    /// Held until the first successful AUTH.
    unauth_slot: UnauthSlot,
    /// Fires at the first successful AUTH (stops the pre-auth timeout).
    authed: CancellationToken,
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// redis-server's rule for client names: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

impl Session {
    pub(super) fn new(
        conn_id: u64,
        deadline: watch::Sender<Option<Instant>>,
        unauth_slot: UnauthSlot,
        authed: CancellationToken,
    ) -> Self {
        Self {
            conn_id,
            authenticated: false,
            resp3: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            deadline,
            unauth_slot,
            authed,
        }
    }

    /// RESP2 with subscriptions: redis-server refuses AUTH and HELLO in this state.
    fn pubsub_restricted(&self) -> bool {
        let subscribed = !(self.channels.is_empty()
            && self.patterns.is_empty()
            && self.shard_channels.is_empty());
        subscribed && !self.resp3
    }

    fn accept(&mut self, exp: Option<i64>) {
        self.authenticated = true;
        self.unauth_slot.release();
        self.authed.cancel();
        let deadline = exp.map(|exp| {
            let left = exp as f64 - crate::jwt::now_unix();
            Instant::now() + Duration::from_secs_f64(left.clamp(0.0, 1.0e9))
        });
        self.deadline.send_replace(deadline);
    }

    pub(super) fn handle(&mut self, cmd: Command, gate: &GateState) -> Vec<u8> {
        let wrong = gate.wrong_password.as_bytes();
        let internal = gate.internal_password().expose_secret().as_bytes();
        let Command { kind, mut args } = cmd;
        match kind {
            Intercept::Auth => {
                if self.pubsub_restricted() {
                    let mut parts: Vec<&[u8]> = vec![b"AUTH"];
                    parts.extend(std::iter::repeat_n(wrong, args.len()));
                    return encode_command(parts);
                }
                match args.len() {
                    1 | 2 => {
                        let (user, pass) = if args.len() == 1 {
                            (None, &args[0])
                        } else {
                            (Some(&args[0][..]), &args[1])
                        };
                        let verdict = gate.check_auth(user, pass, self.conn_id);
                        let pw = match verdict {
                            Ok(exp) => {
                                self.accept(exp);
                                internal
                            }
                            Err(_) => wrong,
                        };
                        if args.len() == 1 {
                            encode_command([b"AUTH".as_slice(), pw])
                        } else {
                            encode_command([b"AUTH".as_slice(), b"default", pw])
                        }
                    }
                    n => {
                        let mut parts: Vec<&[u8]> = vec![b"AUTH"];
                        parts.extend(std::iter::repeat_n(b"x".as_slice(), n));
                        encode_command(parts)
                    }
                }
            }
            Intercept::Hello => self.hello(&mut args, gate, internal, wrong),
            Intercept::Reset => {
                if args.is_empty() {
                    self.authenticated = false;
                    self.resp3 = false;
                    self.channels.clear();
                    self.patterns.clear();
                    self.shard_channels.clear();
                    self.deadline.send_replace(None);
                }
                encode_parts(kind, &args)
            }
            Intercept::Subscribe | Intercept::PSubscribe | Intercept::SSubscribe => {
                if self.authenticated && !args.is_empty() {
                    let set = self.set_for(kind);
                    set.extend(args.iter().cloned());
                }
                encode_parts(kind, &args)
            }
            Intercept::Unsubscribe | Intercept::PUnsubscribe | Intercept::SUnsubscribe => {
                if self.authenticated {
                    let set = self.set_for(kind);
                    if args.is_empty() {
                        set.clear();
                    } else {
                        for a in &args {
                            set.remove(a);
                        }
                    }
                }
                encode_parts(kind, &args)
            }
        }
    }

    fn set_for(&mut self, kind: Intercept) -> &mut HashSet<Bytes> {
        match kind {
            Intercept::PSubscribe | Intercept::PUnsubscribe => &mut self.patterns,
            Intercept::SSubscribe | Intercept::SUnsubscribe => &mut self.shard_channels,
            _ => &mut self.channels,
        }
    }

    fn hello(
        &mut self,
        args: &mut [Bytes],
        gate: &GateState,
        internal: &[u8],
        wrong: &[u8],
    ) -> Vec<u8> {
        if args.is_empty() {
            return encode_parts(Intercept::Hello, args);
        }
        let version = string2ll(&args[0]);
        let version_ok = matches!(version, Some(2 | 3));
        // Parse the options as redis-server does; remember where the credentials are.
        let mut auth_at = None;
        let mut syntax_ok = true;
        let mut i = 1;
        while i < args.len() {
            let more = args.len() - 1 - i;
            if eq(&args[i], "AUTH") && more >= 2 {
                auth_at = Some(i + 1);
                i += 3;
            } else if eq(&args[i], "SETNAME") && more >= 1 {
                if !valid_client_name(&args[i + 1]) {
                    syntax_ok = false;
                    break;
                }
                i += 2;
            } else {
                syntax_ok = false;
                break;
            }
        }
        let restricted = self.pubsub_restricted();
        match auth_at {
            Some(at) if version_ok && syntax_ok && !restricted => {
                let verdict = gate.check_auth(Some(&args[at]), &args[at + 1], self.conn_id);
                args[at] = Bytes::from_static(b"default");
                match verdict {
                    Ok(exp) => {
                        self.accept(exp);
                        self.resp3 = version == Some(3);
                        args[at + 1] = Bytes::copy_from_slice(internal);
                    }
                    Err(_) => args[at + 1] = Bytes::copy_from_slice(wrong),
                }
            }
            Some(at) => {
                // redis-server refuses this HELLO before looking at the credentials.
                args[at] = Bytes::from_static(b"default");
                args[at + 1] = Bytes::copy_from_slice(wrong);
            }
            None => {
                if version_ok && syntax_ok && !restricted && self.authenticated {
                    self.resp3 = version == Some(3);
                }
            }
        }
        encode_parts(Intercept::Hello, args)
    }
}

fn encode_parts(kind: Intercept, args: &[Bytes]) -> Vec<u8> {
    encode_command(std::iter::once(kind.name()).chain(args.iter().map(|a| &a[..])))
}
