//! openraft's own storage test suite (`openraft::testing::Suite`) against the Vellum log
//! store and state machine, on the simulated file system and on the real one.

use openraft::testing::{StoreBuilder, Suite};
use vellum::DatabaseOptions;
use vellum_fs::{DynFs, RealFs, SimFs};
use vellum_raft::{LogStore, StateMachine, StorageError, TypeConfig};

struct OnFs {
    real: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Option<tempfile::TempDir>> for OnFs {
    async fn build(
        &self,
    ) -> Result<(Option<tempfile::TempDir>, LogStore, StateMachine), StorageError> {
        let (fs, root, guard): (DynFs, std::path::PathBuf, _) = if self.real {
            let dir = tempfile::tempdir().expect("a temporary directory");
            (RealFs::shared(), dir.path().to_path_buf(), Some(dir))
        } else {
            (SimFs::new().shared(), "/node".into(), None)
        };
        let fail = |e: vellum_raft::Error| {
            StorageError::from(openraft::StorageIOError::write(openraft::AnyError::error(
                e.to_string(),
            )))
        };
        let log = LogStore::open(fs.clone(), &root.join("raft")).map_err(fail)?;
        let sm =
            StateMachine::open(fs, &root.join("sm"), DatabaseOptions::default()).map_err(fail)?;
        Ok((guard, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_simulated_file_system() {
    Suite::test_all(OnFs { real: false }).unwrap();
}

#[test]
fn openraft_storage_suite_passes_on_the_real_file_system() {
    Suite::test_all(OnFs { real: true }).unwrap();
}
