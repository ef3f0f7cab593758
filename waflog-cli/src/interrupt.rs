//! Ctrl-C: one handler per process, the flags it sets, and [`Interrupted`], the
//! error of a wait it ended (the command saves what it can and exits 130).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// A network wait ended by Ctrl-C: the command saves what it can and exits 130.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C)")
    }
}

impl std::error::Error for Interrupted {}

/// True when the error chain holds an [`Interrupted`].
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Interrupted>().is_some()
        || e.chain().any(|c| {
            c.downcast_ref::<Interrupted>().is_some()
                || c.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .is_some_and(|inner| inner.is::<Interrupted>())
        })
}

/// Installs a Ctrl-C handler that sets the returned flag (once per process).
pub fn stop_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = install_ctrl_c()?;
    GRACEFUL.store(true, Ordering::SeqCst);
    Ok(stop)
}

/// Somebody checks the flag [`stop_on_ctrl_c`] returned (a followed input, a
/// lingering dashboard): Ctrl-C stops gracefully.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

/// AWS network waits under way ([`crate::aws::Aws::call`] and its sleeps), which
/// Ctrl-C ends.
pub static AWS_WAITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs the Ctrl-C handler (once per process) and returns the stop flag.
/// Ctrl-C sets the flags when something checks them (see [`stop_on_ctrl_c`] and
/// [`AWS_WAITS`]); otherwise it ends the process at once with exit code 130,
/// as without a handler.
pub fn install_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(f) = FLAG.get() {
        return Ok(Arc::clone(f));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let interrupt = ctrl_c_flag();
    ctrlc::set_handler(move || {
        flag.store(true, Ordering::SeqCst);
        interrupt.store(true, Ordering::SeqCst);
        if !GRACEFUL.load(Ordering::SeqCst) && AWS_WAITS.load(Ordering::SeqCst) == 0 {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    let _ = FLAG.set(Arc::clone(&stop));
    Ok(stop)
}

/// Set by Ctrl-C only (the flag [`stop_on_ctrl_c`] returns is also set by the
/// commands to stop their readers): ends every AWS network wait.
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))))
}
