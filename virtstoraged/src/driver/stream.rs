//! Upload and download of volume data (`virStorageVolUpload`,
//! `virStorageVolDownload`), in bounded memory.
//!
//! A transfer marks its volume in use (uploads exclusively) and counts as
//! an asynchronous job of the pool, so the pool cannot be destroyed and
//! the volume cannot be deleted, wiped or resized under it. Data moves in
//! chunks of at most [`CHUNK`] bytes, one at a time: a download reads the
//! next chunk only when the transport asks for it (HTTP/2 flow control is
//! the backpressure), an upload writes each message before reading the
//! next. Holes of sparse transfers are found with `SEEK_DATA`/`SEEK_HOLE`
//! and written by punching holes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use common::VirtError;
use common::storage::VolDef;

use super::volumes::{InUse, VolRef};
use super::{StorageDriver, backend_of};
use crate::backend::{content_len, dir, vol_path};
use crate::error::{self, blocking, sys};
use crate::pool_obj::PoolObj;
use crate::wipe::punch_hole;

/// The largest chunk a download sends.
pub const CHUNK: usize = 1 << 20;

/// An upload in progress.
#[derive(Debug)]
pub struct Upload {
    file: Arc<File>,
    pos: u64,
    end: Option<u64>,
    written: u64,
    sparse: bool,
    block: bool,
    /// A block device's size: nothing is written past it.
    device_size: Option<u64>,
    /// Whether a write or hole was attempted (the volume may have changed).
    touched: bool,
    obj: Arc<PoolObj>,
    vol: Arc<VolDef>,
    _use: InUse,
}

/// One piece of a download.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes.
    Data(Vec<u8>),
    /// This many bytes of hole.
    Hole(u64),
}

/// A download in progress.
#[derive(Debug)]
pub struct Download {
    file: Arc<File>,
    pos: u64,
    end: u64,
    sparse: bool,
    seekable: bool,
    _use: InUse,
}

impl StorageDriver {
    /// Starts writing into a volume at `offset`, at most `length` bytes
    /// (0: no limit).
    ///
    /// # Errors
    /// NO_STORAGE_VOL; in use; the volume cannot be opened.
    pub async fn upload_begin(
        &self,
        r: &VolRef,
        offset: u64,
        length: u64,
        sparse: bool,
    ) -> Result<Upload, VirtError> {
        let (v, guard) = self.use_volume(r, true).await?;
        let obj = guard.pool().clone();
        let path = vol_path(&v.def)?;
        let (file, len, block) = blocking(move || {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| sys(format!("Unable to open '{}'", path.display()), &e))?;
            let (len, block) = content_len(&f)
                .map_err(|e| sys(format!("cannot stat '{}'", path.display()), &e))?;
            Ok((f, len, block))
        })
        .await?;
        // Writing may grow a file volume (an image larger than it), but it
        // starts inside it: an offset past the end would only make a huge
        // sparse file out of a typo.
        if offset > len {
            return Err(error::invalid_arg(format!(
                "offset {offset} is past the end of volume '{}' ({len} bytes)",
                v.def.name
            )));
        }
        Ok(Upload {
            file: Arc::new(file),
            pos: offset,
            end: (length > 0).then(|| offset.saturating_add(length)),
            written: 0,
            sparse,
            block,
            device_size: block.then_some(len),
            touched: false,
            obj,
            vol: v.def,
            _use: guard,
        })
    }

    /// Syncs an upload, re-reads the volume and ends the transfer;
    /// returns the bytes written (holes included).
    ///
    /// # Errors
    /// The sync failed.
    pub async fn upload_finish(&self, up: Upload) -> Result<u64, VirtError> {
        let f = up.file.clone();
        let path = up.vol.target.path.clone().unwrap_or_default();
        blocking(move || {
            f.sync_all()
                .map_err(|e| sys(format!("cannot sync '{path}'"), &e))
        })
        .await?;
        let def = up.obj.lock().def.clone();
        if let Ok(b) = backend_of(def.pool_type)
            && let Ok(nv) = b.refresh_vol(def, up.vol.clone()).await
        {
            let mut st = up.obj.lock();
            if st.active && st.vols.contains_key(&up.vol.name) {
                st.vols.insert(up.vol.name.clone(), nv);
            }
        }
        Ok(up.written)
    }

    /// Starts reading a volume from `offset`, at most `length` bytes (0:
    /// to its end).
    ///
    /// # Errors
    /// NO_STORAGE_VOL; written to by someone else; cannot be opened.
    pub async fn download_begin(
        &self,
        r: &VolRef,
        offset: u64,
        length: u64,
        sparse: bool,
    ) -> Result<Download, VirtError> {
        let (v, guard) = self.use_volume(r, false).await?;
        let path = vol_path(&v.def)?;
        let (file, len, block) = blocking(move || {
            let f = File::open(&path)
                .map_err(|e| sys(format!("Unable to open '{}'", path.display()), &e))?;
            let (len, block) = content_len(&f)
                .map_err(|e| sys(format!("cannot stat '{}'", path.display()), &e))?;
            Ok((f, len, block))
        })
        .await?;
        let end = if length == 0 {
            len
        } else {
            offset.saturating_add(length).min(len)
        };
        Ok(Download {
            file: Arc::new(file),
            pos: offset.min(end),
            end,
            sparse,
            seekable: !block,
            _use: guard,
        })
    }
}

impl Upload {
    /// The bytes written so far (holes included), and whether anything was
    /// (or may have been) written into the volume: a failed write counts.
    pub fn progress(&self) -> (u64, bool) {
        (self.written, self.touched)
    }

    /// Checks that `n` more bytes fit: within the requested length, within
    /// a block device, and within the largest file offset; returns where
    /// they end.
    fn room(&self, n: u64) -> Result<u64, VirtError> {
        let past = |what: String| {
            Err(error::invalid_arg(format!(
                "upload of volume '{}' goes past {what} ({n} bytes at offset {})",
                self.vol.name, self.pos
            )))
        };
        let Some(new_end) = self
            .pos
            .checked_add(n)
            .filter(|e| i64::try_from(*e).is_ok())
        else {
            return past("the largest file size".into());
        };
        if let Some(end) = self.end
            && new_end > end
        {
            return past("the requested length".into());
        }
        if let Some(size) = self.device_size
            && new_end > size
        {
            return past(format!("the end of the device ({size} bytes)"));
        }
        Ok(new_end)
    }

    /// Writes the next bytes.
    ///
    /// # Errors
    /// Past the requested length; the write failed.
    pub async fn write(&mut self, data: Vec<u8>) -> Result<(), VirtError> {
        let n = data.len() as u64;
        self.room(n)?;
        self.touched = true;
        let (f, pos) = (self.file.clone(), self.pos);
        let name = self.vol.name.clone();
        blocking(move || {
            f.write_all_at(&data, pos)
                .map_err(|e| sys(format!("cannot write to volume '{name}'"), &e))
        })
        .await?;
        self.pos += n;
        self.written += n;
        Ok(())
    }

    /// Skips `len` bytes, which read as zeroes afterwards.
    ///
    /// # Errors
    /// Not a sparse upload; past the requested length; I/O errors.
    pub async fn hole(&mut self, len: u64) -> Result<(), VirtError> {
        if !self.sparse {
            return Err(error::invalid_arg(
                "hole messages need a sparse upload (header.sparse)",
            ));
        }
        let end = self.room(len)?;
        self.touched = true;
        let (f, pos, block) = (self.file.clone(), self.pos, self.block);
        let name = self.vol.name.clone();
        blocking(move || {
            let write_err = |e: &std::io::Error| sys(format!("cannot write to volume '{name}'"), e);
            // Zeroes are written only inside what exists (a block device,
            // or a file where holes cannot be punched): never to grow a file.
            let zeroes = if block {
                len
            } else {
                // Past the end of the file a hole is just a longer file.
                let size = f.metadata().map_err(|e| write_err(&e))?.len();
                if end > size {
                    f.set_len(end).map_err(|e| write_err(&e))?;
                }
                let inside = size.saturating_sub(pos).min(len);
                if inside == 0 || punch_hole(&f, pos, inside).is_ok() {
                    0
                } else {
                    inside
                }
            };
            let zeros = vec![0u8; CHUNK];
            let mut off = 0;
            while off < zeroes {
                let n = usize::try_from((zeroes - off).min(CHUNK as u64)).unwrap_or(CHUNK);
                f.write_all_at(&zeros[..n], pos + off)
                    .map_err(|e| write_err(&e))?;
                off += n as u64;
            }
            Ok(())
        })
        .await?;
        self.pos += len;
        self.written += len;
        Ok(())
    }
}

impl Download {
    /// The next chunk; `None` at the end.
    ///
    /// # Errors
    /// A read failed.
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk, VirtError>> {
        if self.pos >= self.end {
            return None;
        }
        let (f, pos, end, sparse, seekable) = (
            self.file.clone(),
            self.pos,
            self.end,
            self.sparse,
            self.seekable,
        );
        let r = blocking(move || {
            let mut data_end = end;
            if sparse && seekable {
                match dir::seek_data(&f, pos) {
                    Ok(None) => return Ok(Chunk::Hole(end - pos)),
                    Ok(Some(d)) if d > pos => return Ok(Chunk::Hole(d.min(end) - pos)),
                    Ok(Some(_)) => data_end = dir::seek_hole(&f, pos).unwrap_or(end).min(end),
                    Err(_) => {}
                }
            }
            let n = usize::try_from((data_end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
            let buf = common::storage::probe::read_at(&f, pos, n)
                .map_err(|e| sys("cannot read volume", &e))?;
            if buf.is_empty() {
                return Err(error::internal("volume ended early"));
            }
            Ok(Chunk::Data(buf))
        })
        .await;
        match &r {
            Ok(Chunk::Data(d)) => self.pos += d.len() as u64,
            Ok(Chunk::Hole(n)) => self.pos += n,
            Err(_) => self.pos = self.end,
        }
        Some(r)
    }
}
