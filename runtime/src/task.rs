//! Background tasks that end when their owner goes.
//!
//! Each background task of the crate (the token refresh loop, a handle's supervisor) is spawned
//! with [`spawn_owned`], which returns the [`TaskOwner`] kept in the state the task serves. The
//! task reaches that state through a `Weak` reference and holds a strong one only while it acts
//! on an event, never while it waits; so the last handle's drop drops the state, the owner with
//! it, and the task's future is dropped at its next await point. Nothing is aborted, and no
//! reference cycle keeps a handle's state alive (the shape of hyper-util's pool idle task and
//! tower's buffer worker).

use std::convert::Infallible;
use std::future::Future;

use tokio::sync::oneshot;

/// Stops its task when dropped.
#[derive(Debug)]
pub(crate) struct TaskOwner {
    // Never sent on: dropping it closes the channel, which the task waits for.
    _stop: oneshot::Sender<Infallible>,
}

/// Spawns `task` on the current tokio runtime; it runs until it ends or the returned owner is
/// dropped.
pub(crate) fn spawn_owned(task: impl Future<Output = ()> + Send + 'static) -> TaskOwner {
    let (stop, stopped) = oneshot::channel::<Infallible>();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            () = task => {}
        }
    });
    TaskOwner { _stop: stop }
}

/// Where a state keeps the owner of the task that serves it: filled once the state is in its
/// `Arc` and the task is spawned with a `Weak` to it.
#[derive(Debug, Default)]
pub(crate) struct OwnerSlot(std::sync::Mutex<Option<TaskOwner>>);

impl OwnerSlot {
    /// Keeps `owner`, so that the task stops when this slot's state is dropped.
    pub(crate) fn hold(&self, owner: TaskOwner) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_task_ends_when_its_owner_is_dropped() {
        let alive = Arc::new(());
        let held = Arc::clone(&alive);
        let owner = spawn_owned(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        assert_eq!(Arc::strong_count(&alive), 2);
        drop(owner);
        for _ in 0..100 {
            if Arc::strong_count(&alive) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the task outlived its owner");
    }
}
