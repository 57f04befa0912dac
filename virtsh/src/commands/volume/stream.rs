//! `vol-upload` and `vol-download`: a local file to and from a volume over
//! virtstoraged's `UploadVolume` / `DownloadVolume` streams.
//!
//! Memory stays bounded: the file is read and written in a blocking thread
//! in chunks of at most [`CHUNK`] bytes (1 MiB), handed to and from the
//! gRPC stream through a channel of [`QUEUE`] chunks.
//!
//! With `--sparse`, holes of the local file (`SEEK_DATA`/`SEEK_HOLE`) are
//! sent as `hole` messages, and `hole` chunks of a download are skipped
//! (the file is extended over them) rather than written, as virsh's
//! `virshStreamSkip`; a block device gets zeroes instead.
//!
//! A local failure while uploading breaks the request stream with an error
//! (HTTP/2 `RST_STREAM` with `INTERNAL_ERROR`, through [`UploadCodec`]), so
//! that the daemon never takes a cut-short upload for a complete one. (A
//! plain gRPC cancellation would not do: it resets the stream with
//! `CANCEL`, which tonic's server side reads as a clean end of the client's
//! stream.)
//!
//! While the data flows, a virsh-like progress line (`Upload: [ 45.00 %]`)
//! is drawn on stderr when stderr is a terminal (and `-q` is not given).

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::storage::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use crate::cli::{HandlerFuture, Invocation};
use crate::commands::domain::{strerror, string_req};
use crate::commands::storage::{Client, opt_vol, vol_ref};
use crate::connection::{Daemon, VirtChannel};
use crate::ctl::Ctl;
use crate::error::Error;

/// The largest data message sent or written at once.
pub const CHUNK: usize = 1 << 20;
/// How many chunks may wait between the file and the stream.
pub const QUEUE: usize = 4;

/// How often the progress line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);

/// virsh's `virshPrintJobProgress` line: `\rLABEL: [ppp.pp %]`, the
/// percentage truncated to two decimals and never 100 before the end.
pub fn progress_line(label: &str, done: u64, total: u64) -> String {
    let remaining = total.saturating_sub(done);
    let mut progress = 100.0_f64;
    if remaining != 0 {
        #[allow(clippy::cast_precision_loss)]
        let (r, t) = (remaining as f64, total as f64);
        progress = 100.0 - r * 100.0 / t;
        if progress >= 100.0 {
            progress = 99.99;
        }
    }
    let progress = (progress * 100.0).trunc() / 100.0;
    format!("\r{label}: [{progress:5.2} %]")
}

/// A progress line on a terminal: drawn on `sink` as bytes go by, ended by
/// [`Progress::finish`]. Without a sink (or a total) it only counts.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    sink: Option<Box<dyn Write + Send>>,
    drawn: Option<Instant>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("label", &self.label)
            .field("total", &self.total)
            .field("done", &self.done)
            .field("drawing", &self.sink.is_some())
            .finish()
    }
}

impl Progress {
    /// Progress of `total` bytes drawn on `sink` (nothing is drawn without
    /// a sink or with a zero total).
    pub fn new(label: &'static str, total: u64, sink: Option<Box<dyn Write + Send>>) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            sink: sink.filter(|_| total > 0),
            drawn: None,
        }
    }

    /// Progress drawn on stderr when it is a terminal and `quiet` is off.
    pub fn terminal(label: &'static str, total: u64, quiet: bool) -> Progress {
        let sink: Option<Box<dyn Write + Send>> = if !quiet && std::io::stderr().is_terminal() {
            Some(Box::new(std::io::stderr()))
        } else {
            None
        };
        Progress::new(label, total, sink)
    }

    /// Bytes counted so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    fn draw(&mut self) {
        let line = progress_line(self.label, self.done, self.total);
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.write_all(line.as_bytes());
            let _ = sink.flush();
        }
        self.drawn = Some(Instant::now());
    }

    /// Counts `n` more bytes, redrawing at most every [`REDRAW`].
    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if self.sink.is_some() && self.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    /// Ends the line: `[100.00 %]` after a success, the last state after a
    /// failure; then a newline, so that what follows starts a line.
    pub fn finish(&mut self, ok: bool) {
        if self.sink.is_none() {
            return;
        }
        if ok {
            self.done = self.done.max(self.total);
            self.draw();
        } else if self.drawn.is_none() {
            return;
        }
        if let Some(sink) = self.sink.as_mut() {
            let _ = sink.write_all(b"\n");
            let _ = sink.flush();
        }
    }
}

/// Why a transfer failed.
#[derive(Debug)]
pub enum TransferError {
    /// The daemon refused or failed the call.
    Daemon(tonic::Status),
    /// The daemon failed while data was flowing (downloads).
    Stream(tonic::Status),
    /// Reading or writing the local file failed.
    Local(std::io::Error),
}

/// virsh's `vshCommandOptULongLongWrap` of `--length`: a negative value
/// wraps around (`-1` is "everything").
///
/// # Errors
/// `Numeric value 'X' for <length> option is malformed or out of range`.
pub fn length_opt(inv: &Invocation) -> Result<u64, Error> {
    match inv.int::<u64>("length") {
        Ok(v) => Ok(v.unwrap_or(0)),
        Err(e) => match inv.int::<i64>("length") {
            #[allow(clippy::cast_sign_loss)]
            Ok(Some(v)) => Ok(v as u64),
            _ => Err(e),
        },
    }
}

/// What the upload thread reads.
#[derive(Debug)]
pub struct Source {
    /// The open file.
    pub file: File,
    /// Send holes (`--sparse`) where the file has them.
    pub sparse: bool,
    /// The file is a block device (never scanned for holes).
    pub is_block: bool,
    /// Send at most this many bytes (0: all).
    pub limit: u64,
    /// Tests: fail reading once this many bytes were read.
    #[cfg(test)]
    pub fail_after: Option<u64>,
}

/// Where the file's data and holes are, from `pos`: `Some((true, n))`: n
/// bytes of data; `Some((false, n))`: a hole of n bytes (n = 0 at the end
/// of the file); `None`: the file system cannot tell.
fn section_at(file: &File, pos: u64) -> std::io::Result<Option<(bool, u64)>> {
    use nix::errno::Errno;
    use nix::unistd::{Whence, lseek};
    let Ok(at) = i64::try_from(pos) else {
        return Ok(Some((false, 0)));
    };
    let size = file.metadata()?.len();
    match lseek(file, at, Whence::SeekData) {
        Ok(data) => {
            let data = u64::try_from(data).unwrap_or(pos);
            if data > pos {
                return Ok(Some((false, data - pos)));
            }
            let hole = match lseek(file, at, Whence::SeekHole) {
                Ok(h) => u64::try_from(h).unwrap_or(size),
                Err(_) => size,
            };
            Ok(Some((true, hole.saturating_sub(pos).max(1))))
        }
        Err(Errno::ENXIO) => Ok(Some((false, size.saturating_sub(pos)))),
        Err(_) => Ok(None),
    }
}

/// How the upload thread ended.
#[derive(Debug, PartialEq, Eq)]
enum Produced {
    /// Everything was handed to the stream.
    All,
    /// The stream went away (the daemon answered) or the call was aborted.
    Stopped,
}

/// One message of the upload stream, or the order to break it.
#[derive(Debug)]
pub enum Outgoing {
    /// A message for the daemon.
    Msg(pb::UploadVolumeRequest),
    /// Break the stream with an error (the local file failed).
    Abort,
}

/// The codec of `UploadVolume` calls: protobuf both ways, and
/// [`Outgoing::Abort`] failing the encoder, which makes tonic end the
/// request body with an error, and hyper reset the HTTP/2 stream with
/// `INTERNAL_ERROR`: the daemon's stream then fails instead of ending.
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadCodec;

/// The encoder of [`UploadCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadEncoder;

/// The decoder of [`UploadCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadDecoder;

impl Encoder for UploadEncoder {
    type Item = Outgoing;
    type Error = Status;

    fn encode(&mut self, item: Outgoing, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Outgoing::Msg(m) => {
                prost::Message::encode(&m, dst).map_err(|e| Status::internal(e.to_string()))
            }
            Outgoing::Abort => Err(Status::aborted("the upload's source failed")),
        }
    }
}

impl Decoder for UploadDecoder {
    type Item = pb::UploadVolumeResponse;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        prost::Message::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for UploadCodec {
    type Encode = Outgoing;
    type Decode = pb::UploadVolumeResponse;
    type Encoder = UploadEncoder;
    type Decoder = UploadDecoder;

    fn encoder(&mut self) -> UploadEncoder {
        UploadEncoder
    }

    fn decoder(&mut self) -> UploadDecoder {
        UploadDecoder
    }
}

/// Reads `src` and hands it to `tx` as `data` (and `hole`) messages,
/// then the `end` message that tells the daemon the upload is complete
/// (without it, the daemon takes the stream for cancelled).
fn produce(
    src: &mut Source,
    tx: &mpsc::Sender<Outgoing>,
    stop: &AtomicBool,
    progress: &mut Progress,
) -> std::io::Result<Produced> {
    use pb::upload_volume_request::Msg;
    let r = produce_data(src, tx, stop, progress)?;
    if matches!(r, Produced::All) {
        if stop.load(Ordering::Relaxed) {
            return Ok(Produced::Stopped);
        }
        let end = pb::UploadVolumeRequest {
            msg: Some(Msg::End(pb::UploadEnd {})),
        };
        if tx.blocking_send(Outgoing::Msg(end)).is_err() {
            return Ok(Produced::Stopped);
        }
    }
    Ok(r)
}

fn produce_data(
    src: &mut Source,
    tx: &mpsc::Sender<Outgoing>,
    stop: &AtomicBool,
    progress: &mut Progress,
) -> std::io::Result<Produced> {
    use pb::upload_volume_request::Msg;
    let limit = if src.limit == 0 { u64::MAX } else { src.limit };
    let mut pos = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let send = |msg: Msg| {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tx.blocking_send(Outgoing::Msg(pb::UploadVolumeRequest { msg: Some(msg) }))
            .is_ok()
    };
    while pos < limit {
        let section = if src.sparse && !src.is_block {
            section_at(&src.file, pos)?
        } else {
            None
        };
        let mut data_left = match section {
            Some((false, 0)) => break,
            Some((false, hole)) => {
                let n = hole.min(limit - pos);
                if !send(Msg::Hole(n)) {
                    return Ok(Produced::Stopped);
                }
                progress.advance(n);
                pos += n;
                continue;
            }
            Some((true, n)) => {
                src.file.seek(SeekFrom::Start(pos))?;
                n
            }
            None => u64::MAX,
        };
        while data_left > 0 && pos < limit {
            let want = usize::try_from(data_left.min(limit - pos))
                .unwrap_or(CHUNK)
                .min(CHUNK);
            #[cfg(test)]
            if src.fail_after.is_some_and(|n| pos >= n) {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            let got = match src.file.read(&mut buf[..want]) {
                Ok(0) => return Ok(Produced::All),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if !send(Msg::Data(buf[..got].to_vec())) {
                return Ok(Produced::Stopped);
            }
            let got = got as u64;
            progress.advance(got);
            pos += got;
            data_left = data_left.saturating_sub(got);
        }
        if section.is_none() {
            break;
        }
    }
    Ok(Produced::All)
}

/// Uploads `src` into the volume of `header` over `channel` (to
/// virtstoraged); returns the daemon's count of bytes written.
///
/// # Errors
/// [`TransferError::Local`] when the file cannot be read (the stream is
/// then broken, see [`UploadCodec`]), [`TransferError::Daemon`] when the
/// daemon fails the call.
pub async fn upload(
    channel: VirtChannel,
    header: pb::UploadHeader,
    src: Source,
    progress: Progress,
) -> Result<u64, TransferError> {
    use pb::upload_volume_request::Msg;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| {
        TransferError::Daemon(Status::unknown(format!("Service was not ready: {e}")))
    })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let first = Outgoing::Msg(pb::UploadVolumeRequest {
        msg: Some(Msg::Header(header)),
    });
    if tx.send(first).await.is_err() {
        return Err(TransferError::Local(std::io::Error::other("stream closed")));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = stop.clone();
    let mut producer = tokio::task::spawn_blocking(move || {
        let (mut src, mut progress) = (src, progress);
        let r = produce(&mut src, &tx, &stop_thread, &mut progress);
        if r.is_err() {
            // Break the stream before it can end.
            let _ = tx.blocking_send(Outgoing::Abort);
        }
        (r, progress)
    });
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.extensions_mut().insert(tonic::GrpcMethod::new(
        "virt.storage.v1.StorageService",
        "UploadVolume",
    ));
    let cancel = request.cancellation_handle();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/virt.storage.v1.StorageService/UploadVolume",
    );
    let mut call = Box::pin(grpc.client_streaming(request, path, UploadCodec));

    enum First<C, P> {
        Call(C),
        Produced(P),
    }
    let first = tokio::select! {
        r = &mut call => First::Call(r),
        p = &mut producer => First::Produced(p),
    };
    let (answer, produced) = match first {
        First::Call(answer) => {
            // The daemon answered before everything was read: stop reading
            // (and sending: the answer is all there is to know).
            stop.store(true, Ordering::Relaxed);
            cancel.cancel();
            (answer, producer.await)
        }
        First::Produced(p) => (call.await, p),
    };
    let (read, mut progress) = match produced {
        Ok((read, progress)) => (read, Some(progress)),
        Err(e) => (Err(std::io::Error::other(e.to_string())), None),
    };
    let result = match (read, answer) {
        (Err(e), _) => Err(TransferError::Local(e)),
        (Ok(_), Err(s)) => Err(TransferError::Daemon(s)),
        (Ok(_), Ok(r)) => Ok(r.into_inner().bytes_written),
    };
    if let Some(p) = progress.as_mut() {
        p.finish(result.is_ok());
    }
    result
}

/// Writes the chunks of `rx` into `file`: data as is, holes skipped over
/// (the file extended) or, on a block device, written as zeroes.
fn consume(
    file: &mut File,
    is_block: bool,
    rx: &mut mpsc::Receiver<pb::download_volume_chunk::Chunk>,
    progress: &mut Progress,
) -> std::io::Result<()> {
    use pb::download_volume_chunk::Chunk;
    let mut zeroes: Vec<u8> = Vec::new();
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(d) => {
                file.write_all(&d)?;
                progress.advance(d.len() as u64);
            }
            Chunk::Hole(n) if is_block => {
                if zeroes.is_empty() {
                    zeroes = vec![0u8; CHUNK];
                }
                let mut left = n;
                while left > 0 {
                    let k = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                    file.write_all(&zeroes[..k])?;
                    left -= k as u64;
                }
                progress.advance(n);
            }
            Chunk::Hole(n) => {
                let skip = i64::try_from(n)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
                let end = file.seek(SeekFrom::Current(skip))?;
                file.set_len(end)?;
                progress.advance(n);
            }
        }
    }
    Ok(())
}

/// Downloads the volume of `req` into `file`.
///
/// # Errors
/// [`TransferError::Daemon`] when the daemon refuses the call,
/// [`TransferError::Stream`] when it fails while sending,
/// [`TransferError::Local`] when the file cannot be written (the call is
/// then dropped).
pub async fn download(
    client: &mut Client,
    req: pb::DownloadVolumeRequest,
    file: File,
    is_block: bool,
    progress: Progress,
) -> Result<(), TransferError> {
    let mut stream = client
        .download_volume(req)
        .await
        .map_err(TransferError::Daemon)?
        .into_inner();
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        let (mut file, mut progress) = (file, progress);
        let r = consume(&mut file, is_block, &mut rx, &mut progress);
        (r, progress)
    });
    let mut failed = None;
    loop {
        match stream.message().await {
            Ok(Some(pb::DownloadVolumeChunk { chunk: Some(c) })) => {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(s) => {
                failed = Some(s);
                break;
            }
        }
    }
    drop(tx);
    drop(stream);
    let (written, mut progress) = writer
        .await
        .map_err(|e| TransferError::Local(std::io::Error::other(e.to_string())))?;
    let result = match (written, failed) {
        (Err(e), _) => Err(TransferError::Local(e)),
        (Ok(()), Some(s)) => Err(TransferError::Stream(s)),
        (Ok(()), None) => Ok(()),
    };
    progress.finish(result.is_ok());
    result
}

/// The size of an open file: its length, or a block device's size.
fn file_size(file: &mut File) -> Option<u64> {
    let meta = file.metadata().ok()?;
    if meta.is_file() {
        return Some(meta.len());
    }
    if meta.file_type().is_block_device() {
        let size = file.seek(SeekFrom::End(0)).ok()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        return Some(size);
    }
    None
}

/// `vol-upload VOL FILE [--pool POOL] [--offset N] [--length N]
/// [--sparse]`.
pub(super) fn cmd_vol_upload<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let offset = inv.int::<u64>("offset")?.unwrap_or(0);
        let length = length_opt(inv)?;
        let (_, v, arg) = opt_vol(ctl, inv).await?;
        let file = string_req(inv, "file")?.unwrap_or_default().to_owned();
        let mut f = File::open(&file).map_err(|_| Error::msg(format!("cannot read {file}")))?;
        let meta = f
            .metadata()
            .map_err(|_| Error::msg(format!("unable to stat {file}")))?;
        let is_block = meta.file_type().is_block_device();
        let total = file_size(&mut f).map_or(0, |s| if length > 0 { s.min(length) } else { s });
        let sparse = inv.flag("sparse");
        let header = pb::UploadHeader {
            volume: Some(vol_ref(&v)),
            offset,
            length,
            sparse,
        };
        let src = Source {
            file: f,
            sparse,
            is_block,
            limit: length,
            #[cfg(test)]
            fail_after: None,
        };
        let progress = Progress::terminal("Upload", total, ctl.settings.quiet);
        let channel = ctl.connection()?.channel(Daemon::Storage).await?;
        match upload(channel, header, src, progress).await {
            Ok(_) => Ok(()),
            Err(TransferError::Local(e)) => Err(Error::context(
                format!("cannot send data to volume {arg}"),
                Some(Error::msg(format!(
                    "Unable to read from '{file}': {}",
                    strerror(&e)
                ))),
            )),
            Err(TransferError::Daemon(s) | TransferError::Stream(s)) => Err(Error::context(
                format!("cannot upload to volume {arg}"),
                Some(s.into()),
            )),
        }
    })
}

/// How many bytes a download will bring: the volume's physical size (its
/// capacity if unknown) past `offset`, at most `length`.
pub fn download_total(info: &pb::GetVolumeInfoResponse, offset: u64, length: u64) -> u64 {
    let size = if info.physical > 0 {
        info.physical
    } else {
        info.capacity
    };
    let left = size.saturating_sub(offset);
    if length > 0 { left.min(length) } else { left }
}

/// `vol-download VOL FILE [--pool POOL] [--offset N] [--length N]
/// [--sparse]`.
pub(super) fn cmd_vol_download<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let offset = inv.int::<u64>("offset")?.unwrap_or(0);
        let length = length_opt(inv)?;
        let (mut client, v, arg) = opt_vol(ctl, inv).await?;
        let file = string_req(inv, "file")?.unwrap_or_default().to_owned();
        let sparse = inv.flag("sparse");
        let cannot_create = || Error::msg(format!("cannot create {file}"));
        let (f, created) = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&file)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&file)
                    .map_err(|_| cannot_create())?;
                (f, false)
            }
            Err(_) => return Err(cannot_create()),
        };
        let cleanup = |e: Error| {
            if created {
                let _ = std::fs::remove_file(&file);
            }
            e
        };
        let meta = f
            .metadata()
            .map_err(|_| cleanup(Error::msg(format!("unable to stat {file}"))))?;
        let is_block = meta.file_type().is_block_device();
        let mut progress = Progress::terminal("Download", 0, ctl.settings.quiet);
        if std::io::stderr().is_terminal() && !ctl.settings.quiet {
            let req = pb::GetVolumeInfoRequest {
                volume: Some(vol_ref(&v)),
            };
            if let Ok(info) = client.get_volume_info(req).await {
                let total = download_total(&info.into_inner(), offset, length);
                progress = Progress::terminal("Download", total, ctl.settings.quiet);
            }
        }
        let req = pb::DownloadVolumeRequest {
            volume: Some(vol_ref(&v)),
            offset,
            length,
            sparse,
        };
        download(&mut client, req, f, is_block, progress)
            .await
            .map_err(|e| {
                cleanup(match e {
                    TransferError::Daemon(s) => {
                        Error::context(format!("cannot download from volume {arg}"), Some(s.into()))
                    }
                    TransferError::Stream(s) => Error::context(
                        format!("cannot receive data from volume {arg}"),
                        Some(s.into()),
                    ),
                    TransferError::Local(e) => Error::context(
                        format!("cannot receive data from volume {arg}"),
                        Some(Error::msg(format!(
                            "Unable to write to '{file}': {}",
                            strerror(&e)
                        ))),
                    ),
                })
            })
    })
}
