//! Random bytes on every listener never panic the emulator and never disturb other clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azure_redis_emulator::Emulator;
use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Random input biased towards protocol characters.
fn garbage(seed: &mut u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"*$\r\n0123456789-+:AUTHELOauthello \"'\\x";
    let len = (xorshift(seed) % 400) as usize;
    (0..len)
        .map(|_| {
            let r = xorshift(seed);
            if r.is_multiple_of(8) {
                (r >> 8) as u8
            } else {
                ALPHABET[(r >> 8) as usize % ALPHABET.len()]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_input_never_panics_and_never_disturbs_others() {
    let panics = Arc::new(AtomicUsize::new(0));
    {
        let panics = panics.clone();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }));
    }
    bounded(async {
        let emu = start(Emulator::builder().plain_listener(true)).await;
        let oid = emu.system_identity();
        let mut good = RawConn::tls(&emu).await;
        assert_eq!(
            auth(&mut good, &emu, &oid, Duration::from_secs(120)).await,
            ok()
        );

        let plain = emu.plain_addr().expect("plain");
        let targets = [
            plain,
            emu.tls_addr(),
            emu.token_endpoint_addr(),
            emu.identity_endpoint()
                .trim_start_matches("http://")
                .split('/')
                .next()
                .expect("host:port")
                .parse()
                .expect("addr"),
        ];
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8u64 {
            tasks.spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (worker + 1);
                for round in 0..40 {
                    let target = targets[((worker + round) % targets.len() as u64) as usize];
                    let Ok(mut s) = tokio::net::TcpStream::connect(target).await else {
                        continue;
                    };
                    for _ in 0..3 {
                        if s.write_all(&garbage(&mut seed)).await.is_err() {
                            break;
                        }
                    }
                    let _ = s.shutdown().await;
                    let mut sink = [0u8; 4096];
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), s.read(&mut sink)).await;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("fuzz worker");
        }
        assert_eq!(good.cmd_str(&["PING"]).await, pong());
        let mut fresh = RawConn::plain(plain).await;
        auth_ok(&mut fresh, &emu, &oid).await;
        assert_eq!(fresh.cmd_str(&["SET", "after", "fuzz"]).await, ok());
        emu.shutdown().await;
    })
    .await;
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a task panicked");
}
