//! Process shutdown signals for the example servers.

use std::io;

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
///
/// Every server subcommand selects on this so that it exits promptly when asked to stop.
pub async fn terminate_signal() -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => Ok(()),
            result = tokio::signal::ctrl_c() => result,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_on_sigterm() {
        let waiter = tokio::spawn(terminate_signal());
        // Give the handler time to register before the signal is raised.
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let pid = std::process::id();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(outcome, Ok(Ok(Ok(())))), "{outcome:?}");
    }
}
