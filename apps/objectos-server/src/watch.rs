//! `objectos serve --watch`: reloads the metadata folders when a file in them changes.
//!
//! Changes are debounced (an editor's save is often several events, a `git checkout` many), then
//! the data plugin's `metadata` service reloads: objects and every plugin metadata kind are
//! loaded and checked together, the additive schema sync runs, and the new snapshot is swapped
//! in whole, after which `metadata.reloaded` tells the plugins. A broken edit changes nothing
//! and every problem is logged with its file and line, so the server keeps serving the last good
//! metadata while the author fixes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use objectos_data::{DataError, MetadataHandle};

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watch; dropping it stops watching.
#[derive(Debug)]
pub(crate) struct Watching {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether an event can change what the loader reads (reads and attribute-only changes cannot).
fn relevant(event: &notify::Event) -> bool {
    !matches!(event.kind, EventKind::Access(_))
        && event.paths.iter().any(|p| {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') || n.ends_with('~'));
            !hidden
        })
}

/// Starts watching `dirs` (recursively) and reloading through `metadata`.
pub(crate) fn spawn(dirs: &[PathBuf], metadata: Arc<MetadataHandle>) -> anyhow::Result<Watching> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if relevant(&event) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Metadata watch error."),
        })?;
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", dir.display()))?;
    }
    tracing::info!(
        folders = dirs.len(),
        "Watching the metadata folders for changes."
    );
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Wait until the folder has been quiet for a moment, taking every event meanwhile.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            reload(&metadata).await;
        }
    });
    Ok(Watching {
        _watcher: watcher,
        task,
    })
}

async fn reload(metadata: &MetadataHandle) {
    match metadata.reload().await {
        Ok(done) => tracing::info!(
            objects = done.objects,
            items = done.items.values().sum::<usize>(),
            migration_steps = done.migration_steps,
            "Metadata reloaded."
        ),
        Err(DataError::Metadata { diagnostics }) => {
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                tracing::error!("{d}");
            }
            tracing::error!(
                errors = diagnostics.iter().filter(|d| d.is_error()).count(),
                "The metadata has errors; the running metadata stays until they are fixed."
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "Metadata reload failed; the running metadata stays.")
        }
    }
}
