//! A crash image on the real file system: [`SimStorage::save_image`] writes every file of
//! the simulated disk under a directory (`wal/00000000000000000001.wal`, `wal/META`, ...,
//! byte for byte, readable with `walctl`), and [`SimStorage::load_image`] builds a
//! simulated disk holding exactly those files, all durable. A crash image holds no
//! un-synced change, so nothing is lost between the two: a failure found once is replayed
//! on the very same bytes (docs/testing.md, "Replaying a seed"). Only the files' inode
//! numbers differ (given in name order here), which can change how a crash *during* the
//! replayed recovery tears when several files have un-synced changes.

use super::SimStorage;
use actix_wal::Storage;
use std::io;
use std::path::Path;

impl SimStorage {
    /// Writes every directory and file of this disk, as reads see them, under `to`
    /// (created; it must not hold another image).
    pub fn save_image(&self, to: &Path) -> io::Result<()> {
        std::fs::create_dir_all(to)?;
        self.save_dir(Path::new("/"), to)
    }

    fn save_dir(&self, dir: &Path, to: &Path) -> io::Result<()> {
        for name in self.list(dir)? {
            let (path, out) = (dir.join(&name), to.join(&name));
            if self.is_dir(&path)? {
                std::fs::create_dir_all(&out)?;
                self.save_dir(&path, &out)?;
            } else if let Some(bytes) = self.read_file(&path) {
                std::fs::write(&out, bytes)?;
            }
        }
        Ok(())
    }

    /// A disk holding the directories and files under `from` (as [`Self::save_image`]
    /// wrote them), every one of them durable.
    pub fn load_image(from: &Path) -> io::Result<SimStorage> {
        let sim = SimStorage::new();
        sim.load_dir(from, Path::new("/"))?;
        // Numbered from 0 again, as a crash image is: recovery's operations get the
        // numbers they had when the image was first checked.
        let mut s = sim.lock_shared();
        s.state.ops = 0;
        s.state.seq = 0;
        drop(s);
        Ok(sim)
    }

    fn load_dir(&self, from: &Path, dir: &Path) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = dir.join(e.file_name());
            if e.file_type()?.is_dir() {
                self.create_dir_all(&path)?;
                self.sync_dir(dir)?;
                self.load_dir(&e.path(), &path)?;
            } else {
                let f = self.create(&path)?;
                let bytes = std::fs::read(e.path())?;
                if !bytes.is_empty() {
                    f.write_all_at(&bytes, 0)?;
                }
                f.sync_all()?;
                self.sync_dir(dir)?;
            }
        }
        Ok(())
    }
}
