//! What the node needs from an async runtime: spawning its tasks, timers,
//! and a place for CPU-heavy work. Natively that is tokio; in a browser
//! (wasm32) it is the page's event loop (`wasm-bindgen-futures`) and the
//! browser's timers (`futures-timer`), where there is one thread and no
//! blocking pool.
//!
//! Public for crates that do I/O next to the node (the chain clients):
//! [`timeout`] on both targets, and `on_page` in a browser.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use web_time::Instant;

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the deadline passed")
    }
}

impl std::error::Error for Elapsed {}

/// A spawned task ended without a result: it panicked or was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFailed;

impl std::fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the task panicked or was aborted")
    }
}

impl std::error::Error for TaskFailed {}

/// `future`'s output, or [`Elapsed`] once `duration` has passed: on
/// tokio's timers natively, on the browser's in a page.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    timeout_at(Instant::now() + duration, future).await
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;

    /// A spawned task; dropping it aborts the task.
    #[derive(Debug)]
    pub(crate) struct TaskHandle(tokio_util::task::AbortOnDropHandle<()>);

    impl Future for TaskHandle {
        type Output = Result<(), TaskFailed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Pin::new(&mut self.0).poll(cx).map_err(|_| TaskFailed)
        }
    }

    /// Runs `future` on the runtime until it ends or the handle is dropped.
    pub(crate) fn spawn<F>(future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        TaskHandle(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            future,
        )))
    }

    /// Runs `work` off the async threads, on tokio's blocking pool.
    pub(crate) async fn blocking<T, W>(work: W) -> Result<T, TaskFailed>
    where
        W: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| TaskFailed)
    }

    /// Waits until `deadline`.
    pub(crate) async fn sleep_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await
    }

    /// `future`'s output, or [`Elapsed`] once `deadline` has passed.
    pub(crate) async fn timeout_at<F: Future>(
        deadline: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        tokio::time::timeout_at(deadline.into(), future)
            .await
            .map_err(|_| Elapsed)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use futures::{
        FutureExt,
        channel::oneshot,
        future::{AbortHandle, Abortable, Either},
    };

    use super::*;

    /// A spawned task; dropping it aborts the task.
    #[derive(Debug)]
    pub(crate) struct TaskHandle {
        abort: AbortHandle,
        done: oneshot::Receiver<()>,
    }

    impl Drop for TaskHandle {
        fn drop(&mut self) {
            self.abort.abort();
        }
    }

    impl Future for TaskHandle {
        type Output = Result<(), TaskFailed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.done.poll_unpin(cx).map_err(|_| TaskFailed)
        }
    }

    /// Runs `future` on the page's event loop until it ends or the handle
    /// is dropped.
    pub(crate) fn spawn<F>(future: F) -> TaskHandle
    where
        F: Future<Output = ()> + 'static,
    {
        let (abort, registration) = AbortHandle::new_pair();
        let (tx, done) = oneshot::channel();
        wasm_bindgen_futures::spawn_local(async move {
            if Abortable::new(future, registration).await.is_ok() {
                let _ = tx.send(());
            }
        });
        TaskHandle { abort, done }
    }

    /// Runs `work` now: a page has one thread (Web Workers would need a
    /// message-passing bridge that the verification does not justify).
    pub(crate) async fn blocking<T, W>(work: W) -> Result<T, TaskFailed>
    where
        W: FnOnce() -> T,
    {
        Ok(work())
    }

    /// Waits until `deadline`, on the browser's timers.
    pub(crate) async fn sleep_until(deadline: Instant) {
        futures_timer::Delay::new(deadline.saturating_duration_since(Instant::now())).await
    }

    /// `future`'s output, or [`Elapsed`] once `deadline` has passed.
    pub(crate) async fn timeout_at<F: Future>(
        deadline: Instant,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let future = std::pin::pin!(future);
        let sleep = std::pin::pin!(sleep_until(deadline));
        match futures::future::select(future, sleep).await {
            Either::Left((output, _)) => Ok(output),
            Either::Right(((), _)) => Err(Elapsed),
        }
    }
}

pub(crate) use imp::{TaskHandle, blocking, sleep_until, spawn, timeout_at};

/// Runs `future`, which need not be `Send` (a browser's `fetch` is not), on
/// the page's event loop, and returns a `Send` future of its output: for
/// traits whose futures must be `Send` ([`crate::Broadcaster`],
/// [`crate::HoldingsSource`]) when the work is done in a browser.
#[cfg(target_arch = "wasm32")]
pub fn on_page<T: Send + 'static>(
    future: impl Future<Output = T> + 'static,
) -> impl Future<Output = Result<T, TaskFailed>> + Send {
    let (tx, rx) = futures::channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = tx.send(future.await);
    });
    async move { rx.await.map_err(|_| TaskFailed) }
}
