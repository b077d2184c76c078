//! Generation: pipelines, requests, progress, cancellation and images.
use std::ffi::c_void;
use std::fmt;
use std::mem::{size_of, zeroed};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use twistedpic_sys as sys;

use crate::error::check;
use crate::registry::RawRegistry;
use crate::{c_string, panic, Code, Error, Result};

/// A text-to-image pipeline of a [`crate::Registry`] ([`crate::Registry::pipeline`]).
///
/// `Send + Sync` (tp.h: *safe*): [`Pipeline::generate`] may run on several
/// threads at once, each call with its own C request. Share it in an `Arc`
/// or borrow it into scoped threads. Dropping it (which needs exclusive
/// ownership, as tp.h asks of `tp_pipeline_destroy`) destroys it; it holds
/// the C registry alive until then.
pub struct Pipeline {
    raw: *mut sys::tp_pipeline,
    // Dropped after `raw` is destroyed (Drop runs before the fields).
    _registry: Arc<RawRegistry>,
}

// SAFETY: tp.h: tp_pipeline is thread-safe ("tp_pipeline_generate() may run
// on several threads at once, each with its own request"; name, type and
// sizes are safe). Every call here makes its own tp_request. Destroy runs
// only in Drop, which has exclusive access, and before the registry goes.
unsafe impl Send for Pipeline {}
unsafe impl Sync for Pipeline {}

/// A pipeline's default image size and the multiple every size must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Default width, pixels.
    pub width: u32,
    /// Default height, pixels.
    pub height: u32,
    /// Widths and heights must be multiples of this.
    pub multiple: u32,
}

impl Pipeline {
    /// SAFETY: `raw` is a live pipeline of `registry`'s tp_registry, owned by the caller.
    pub(crate) unsafe fn from_raw(raw: *mut sys::tp_pipeline, registry: Arc<RawRegistry>) -> Self {
        Pipeline { raw, _registry: registry }
    }

    /// The configured model's name.
    pub fn name(&self) -> &str {
        unsafe { crate::borrowed_str(sys::tp_pipeline_name(self.raw)) }
    }

    /// The pipeline type ("sd3").
    pub fn pipeline_type(&self) -> &str {
        unsafe { crate::borrowed_str(sys::tp_pipeline_type(self.raw)) }
    }

    /// The default image size and the multiple sizes must be.
    pub fn sizes(&self) -> Result<Sizes> {
        let (mut width, mut height, mut multiple) = (0, 0, 0);
        check(|err| unsafe { sys::tp_pipeline_sizes(&mut width, &mut height, &mut multiple, self.raw, err) })?;
        let u = |v: i32| u32::try_from(v).unwrap_or(0);
        Ok(Sizes { width: u(width), height: u(height), multiple: u(multiple) })
    }

    /// Generates the request's images, prompt-major (every image of the first
    /// prompt first). Leases each network in turn, loading it when needed;
    /// nothing stays leased afterwards. Errors: `InvalidArgument` for bad
    /// settings (no prompt, a bad size, ...), `Unimplemented` for an unknown
    /// option, `Cancelled` (the request's [`CancelHandle`] or its progress
    /// closure), `ResourceExhausted` when a network cannot fit, the registry's
    /// codes for a failed load, `Internal` for a torch failure.
    pub fn generate(&self, request: &Request) -> Result<Vec<Image>> {
        self.run(request).map(|g| g.images)
    }

    /// As [`Pipeline::generate`], with the settings the call ran with, its
    /// timings and its warnings.
    pub fn run(&self, request: &Request) -> Result<Generation> {
        let req = RawRequest::new()?;
        request.apply(req.0)?;
        let _running = request.cancel.register(req.0)?;
        let mut result = RawResult(ptr::null_mut());
        check(|err| unsafe { sys::tp_pipeline_generate(&mut result.0, self.raw, req.0, err) })?;
        result.read()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        panic::call(|| unsafe { sys::tp_pipeline_destroy(self.raw) });
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline").field("name", &self.name()).field("type", &self.pipeline_type()).finish()
    }
}

/// Owns a tp_request for one call.
struct RawRequest(*mut sys::tp_request);

impl RawRequest {
    fn new() -> Result<Self> {
        let mut req = RawRequest(ptr::null_mut());
        check(|err| unsafe { sys::tp_request_create(&mut req.0, err) })?;
        Ok(req)
    }
}

impl Drop for RawRequest {
    fn drop(&mut self) {
        unsafe { sys::tp_request_destroy(self.0) }
    }
}

/// Owns a tp_result.
struct RawResult(*mut sys::tp_result);

impl RawResult {
    /// Copies out the images, info and warnings.
    fn read(&self) -> Result<Generation> {
        // SAFETY: plain data; struct_size is set as tp_result_get_info requires.
        let mut info: sys::tp_result_info = unsafe { zeroed() };
        info.struct_size = size_of::<sys::tp_result_info>() as u32;
        check(|err| unsafe { sys::tp_result_get_info(&mut info, self.0, err) })?;
        let images = (0..info.image_count)
            .map(|index| {
                // SAFETY: as above.
                let mut img: sys::tp_image = unsafe { zeroed() };
                img.struct_size = size_of::<sys::tp_image>() as u32;
                check(|err| unsafe { sys::tp_result_get_image(&mut img, self.0, index, err) })?;
                // SAFETY: tp.h: `pixels` holds height * stride bytes, borrowed until tp_result_free.
                Ok(unsafe { Image::copy_of(&img) })
            })
            .collect::<Result<Vec<_>>>()?;
        let warnings =
            (0..info.warning_count).map(|i| unsafe { crate::owned_str(sys::tp_result_warning(self.0, i)) }).collect();
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let info = GenerationInfo {
            width: u32::try_from(info.width).unwrap_or(0),
            height: u32::try_from(info.height).unwrap_or(0),
            steps: u32::try_from(info.steps).unwrap_or(0),
            guidance_scale: info.guidance_scale,
            seed: info.seed,
            encode: secs(info.encode_s),
            denoise: secs(info.denoise_s),
            decode: secs(info.decode_s),
            acquire: secs(info.acquire_s),
            total: secs(info.total_s),
        };
        Ok(Generation { images, info, warnings })
    }
}

impl Drop for RawResult {
    fn drop(&mut self) {
        unsafe { sys::tp_result_free(self.0) }
    }
}

/// What [`Pipeline::run`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The images, prompt-major.
    pub images: Vec<Image>,
    /// The settings the call ran with and its timings.
    pub info: GenerationInfo,
    /// Warnings (a truncated prompt, ...).
    pub warnings: Vec<String>,
}

/// The settings a call ran with (the model's defaults filled in), and its timings.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationInfo {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Denoising steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// The seed of the initial noise.
    pub seed: u64,
    /// Text encoding.
    pub encode: Duration,
    /// Denoising.
    pub denoise: Duration,
    /// VAE decoding.
    pub decode: Duration,
    /// Waiting for networks to load (part of the others).
    pub acquire: Duration,
    /// The whole call.
    pub total: Duration,
}

/// What a generate call is doing (tp.h's `TP_STAGE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Running the text encoders.
    Encode,
    /// One denoising step done.
    Denoise,
    /// Running the VAE.
    Decode,
    /// Waiting for a network to load.
    Waiting,
    /// A stage this binding does not know (from a newer library).
    Unknown,
}

impl Stage {
    /// Maps a raw `TP_STAGE_*` value.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            sys::TP_STAGE_ENCODE => Stage::Encode,
            sys::TP_STAGE_DENOISE => Stage::Denoise,
            sys::TP_STAGE_DECODE => Stage::Decode,
            sys::TP_STAGE_WAITING => Stage::Waiting,
            _ => Stage::Unknown,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Stage::Encode => "encode",
            Stage::Denoise => "denoise",
            Stage::Decode => "decode",
            Stage::Waiting => "waiting",
            Stage::Unknown => "?",
        })
    }
}

/// One progress report, passed to a [`Request::progress`] closure.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// What the call is doing.
    pub stage: Stage,
    /// 1-based while denoising ([`Stage::Denoise`]); 0 otherwise.
    pub step: u32,
    /// The call's denoising steps.
    pub steps: u32,
    /// Since the call began.
    pub elapsed: Duration,
    /// [`Stage::Waiting`]: the registry model being loaded ("tiny/vae"); "" otherwise.
    pub model: String,
}

impl Progress {
    unsafe fn from_raw(p: &sys::tp_progress) -> Self {
        Progress {
            stage: Stage::from_raw(p.stage),
            step: u32::try_from(p.step).unwrap_or(0),
            steps: u32::try_from(p.steps).unwrap_or(0),
            elapsed: Duration::try_from_secs_f64(p.elapsed_s).unwrap_or_default(),
            model: crate::owned_str(p.model),
        }
    }
}

type ProgressFn = Mutex<Box<dyn FnMut(&Progress) -> bool + Send>>;

/// The settings of generate calls: a builder. Each setting left alone takes
/// the model's default. Settings are checked when a call runs (the error
/// names the one at fault), except [`Request::option`], checked at once.
///
/// `Send + Sync`: a request holds plain settings, a progress closure behind a
/// mutex, and a [`CancelHandle`]; each call copies the settings into its own
/// tp_request, so one `Request` may serve several calls, one after another or
/// at once (the progress closure then sees every call's reports, one at a time).
///
/// ```no_run
/// # fn demo(pipeline: &twistedpic::Pipeline) -> twistedpic::Result<()> {
/// use twistedpic::{Request, Stage};
/// let request = Request::new()
///     .prompt("a red circle on a white background")
///     .seed(5)
///     .steps(20)
///     .progress(|p| {
///         if p.stage == Stage::Denoise {
///             eprintln!("step {}/{}", p.step, p.steps);
///         }
///         true // false cancels
///     });
/// let cancel = request.cancel_handle(); // cancel.cancel() from any thread
/// let images = pipeline.generate(&request)?;
/// images[0].save("out.png")?;
/// # drop(cancel); Ok(()) }
/// ```
#[derive(Default)]
pub struct Request {
    prompts: Vec<String>,
    negative_prompts: Vec<String>,
    images_per_prompt: Option<u32>,
    size: Option<(u32, u32)>,
    steps: Option<u32>,
    guidance: Option<f64>,
    seed: Option<u64>,
    max_sequence_length: Option<u32>,
    options: Vec<(String, String)>,
    progress: Option<ProgressFn>,
    cancel: CancelHandle,
}

impl Request {
    /// A request with no prompt yet (a call needs at least one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a prompt: each prompt gives [`Request::images_per_prompt`] images.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompts.push(prompt.into());
        self
    }

    /// Appends a negative prompt: give none, one for every prompt, or one per prompt.
    pub fn negative_prompt(mut self, negative_prompt: impl Into<String>) -> Self {
        self.negative_prompts.push(negative_prompt.into());
        self
    }

    /// Images per prompt, 1..64 (default 1).
    pub fn images_per_prompt(mut self, count: u32) -> Self {
        self.images_per_prompt = Some(count);
        self
    }

    /// Pixels, multiples of [`Sizes::multiple`]; 0 takes the model's default.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    /// Denoising steps, 1..1000; 0 takes the model's default.
    pub fn steps(mut self, steps: u32) -> Self {
        self.steps = Some(steps);
        self
    }

    /// Classifier-free guidance; 1 or less turns it off. NaN takes the model's default.
    pub fn guidance(mut self, guidance_scale: f64) -> Self {
        self.guidance = Some(guidance_scale);
        self
    }

    /// The seed of the initial noise (default 0), as `torch.Generator().manual_seed(seed)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// T5 tokens, 1..512 (default 256).
    pub fn max_sequence_length(mut self, tokens: u32) -> Self {
        self.max_sequence_length = Some(tokens);
        self
    }

    /// An option that only some pipeline types have, as text. An unknown key
    /// is `Unimplemented` here and now, which doubles as feature detection;
    /// the pipeline checks the value when a call runs.
    pub fn option(mut self, key: &str, value: &str) -> Result<Self> {
        let req = RawRequest::new()?;
        set_option(req.0, key, value)?;
        self.options.push((key.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Calls `progress` on the generating thread for each report of the calls
    /// made with this request; returning `false` cancels that call (it
    /// returns `Cancelled`). It must not generate with this same request. A
    /// panic in it cancels the call and is resumed in the caller of generate.
    pub fn progress(mut self, progress: impl FnMut(&Progress) -> bool + Send + 'static) -> Self {
        self.progress = Some(Mutex::new(Box::new(progress)));
        self
    }

    /// A handle that cancels the calls made with this request, from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Copies the settings into `req`.
    fn apply(&self, req: *mut sys::tp_request) -> Result<()> {
        for p in &self.prompts {
            let p = c_string(p, "prompt")?;
            check(|err| unsafe { sys::tp_request_add_prompt(req, p.as_ptr(), err) })?;
        }
        for p in &self.negative_prompts {
            let p = c_string(p, "negative prompt")?;
            check(|err| unsafe { sys::tp_request_add_negative_prompt(req, p.as_ptr(), err) })?;
        }
        if let Some(n) = self.images_per_prompt {
            let n = int(n, "images per prompt")?;
            check(|err| unsafe { sys::tp_request_set_images_per_prompt(req, n, err) })?;
        }
        if let Some((w, h)) = self.size {
            let (w, h) = (int(w, "width")?, int(h, "height")?);
            check(|err| unsafe { sys::tp_request_set_size(req, w, h, err) })?;
        }
        if let Some(n) = self.steps {
            let n = int(n, "steps")?;
            check(|err| unsafe { sys::tp_request_set_steps(req, n, err) })?;
        }
        if let Some(g) = self.guidance {
            check(|err| unsafe { sys::tp_request_set_guidance(req, g, err) })?;
        }
        if let Some(seed) = self.seed {
            check(|err| unsafe { sys::tp_request_set_seed(req, seed, err) })?;
        }
        if let Some(n) = self.max_sequence_length {
            let n = int(n, "max sequence length")?;
            check(|err| unsafe { sys::tp_request_set_max_sequence_length(req, n, err) })?;
        }
        for (key, value) in &self.options {
            set_option(req, key, value)?;
        }
        if let Some(progress) = &self.progress {
            // The closure lives in `self`, which outlives the call (`run` borrows it).
            let user_data = ptr::from_ref(progress).cast_mut().cast::<c_void>();
            check(|err| unsafe { sys::tp_request_set_progress(req, Some(on_progress), user_data, err) })?;
        }
        Ok(())
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("prompts", &self.prompts)
            .field("negative_prompts", &self.negative_prompts)
            .field("images_per_prompt", &self.images_per_prompt)
            .field("size", &self.size)
            .field("steps", &self.steps)
            .field("guidance", &self.guidance)
            .field("seed", &self.seed)
            .field("max_sequence_length", &self.max_sequence_length)
            .field("options", &self.options)
            .field("progress", &self.progress.is_some())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

fn set_option(req: *mut sys::tp_request, key: &str, value: &str) -> Result<()> {
    let (k, v) = (c_string(key, "option key")?, c_string(value, "option value")?);
    check(|err| unsafe { sys::tp_request_set_option(req, k.as_ptr(), v.as_ptr(), err) })
}

/// `v` as the C int32, or InvalidArgument naming `what`.
fn int(v: u32, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::new(Code::InvalidArgument, format!("{what} {v} is out of range")))
}

unsafe extern "C" fn on_progress(p: *const sys::tp_progress, user_data: *mut c_void) -> i32 {
    // SAFETY: user_data is the ProgressFn of the Request the running call borrows.
    let progress = &*user_data.cast::<ProgressFn>();
    let report = Progress::from_raw(&*p);
    // A panic (None) cancels the call; panic::call resumes it when generate returns.
    match panic::wrap(|| (progress.lock().unwrap_or_else(PoisonError::into_inner))(&report)) {
        Some(true) => 0,
        _ => 1,
    }
}

/// Cancels the generate calls of one [`Request`] from any thread
/// ([`Request::cancel_handle`]).
///
/// `Send + Sync + Clone`: clones share one state behind a mutex, and
/// `tp_request_cancel` is thread-safe in tp.h. Cancelling is sticky, as a
/// cancelled tp_request is: the calls running now return `Cancelled` at the
/// next check (between steps, between networks, while waiting for a load),
/// and later calls with the same request return `Cancelled` at once. Build a
/// new [`Request`] for the next call.
#[derive(Clone, Default)]
pub struct CancelHandle(Arc<Mutex<CancelState>>);

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    /// The tp_requests of the calls running now.
    running: Vec<RunningRequest>,
}

#[derive(PartialEq)]
struct RunningRequest(*mut sys::tp_request);

// SAFETY: only ever passed to tp_request_cancel, which tp.h makes thread-safe,
// and removed before the request is destroyed.
unsafe impl Send for RunningRequest {}

impl CancelHandle {
    /// Cancels the calls running with the request, and every later one.
    pub fn cancel(&self) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.cancelled = true;
        for r in &state.running {
            unsafe { sys::tp_request_cancel(r.0) };
        }
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).cancelled
    }

    /// Lists `req` as running until the guard drops; `Cancelled` if already cancelled.
    fn register(&self, req: *mut sys::tp_request) -> Result<Running<'_>> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.cancelled {
            return Err(Error::new(Code::Cancelled, "the request was cancelled before the call began"));
        }
        state.running.push(RunningRequest(req));
        Ok(Running { handle: self, req })
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// Removes a request from its handle's running list.
struct Running<'a> {
    handle: &'a CancelHandle,
    req: *mut sys::tp_request,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.handle.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.running.retain(|r| r.0 != self.req);
    }
}

/// An RGB8 image: `height` rows of `width * 3` bytes, no padding.
///
/// It owns its pixels, copied out of the C result before generate returns
/// (a memcpy of a few hundred KiB to a few MiB, nothing next to the seconds of
/// a generation): so an `Image` is plain data, `Send + Sync`, `Clone`, with no
/// lifetime tied to the library, and the C result is freed at once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Image {
    /// An image from tightly packed RGB8 pixels (`width * height * 3` bytes),
    /// to encode with [`Image::save`] or [`Image::png_bytes`].
    pub fn from_rgb8(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        let want = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(3));
        let fits_c = i32::try_from(width.saturating_mul(3)).is_ok() && i32::try_from(height).is_ok();
        if width == 0 || height == 0 || !fits_c || want != Some(pixels.len()) {
            return Err(Error::new(
                Code::InvalidArgument,
                format!("{width}x{height} RGB8 needs {} bytes, got {}", want.unwrap_or(usize::MAX), pixels.len()),
            ));
        }
        Ok(Image { width, height, pixels })
    }

    /// SAFETY: `img.pixels` holds `img.height` rows of `img.stride` bytes.
    unsafe fn copy_of(img: &sys::tp_image) -> Self {
        let (width, height) = (img.width.max(0) as usize, img.height.max(0) as usize);
        let (row, stride) = (width * 3, img.stride.max(0) as usize);
        let mut pixels = Vec::with_capacity(row * height);
        for y in 0..height {
            pixels.extend_from_slice(std::slice::from_raw_parts(img.pixels.add(y * stride), row));
        }
        Image { width: width as u32, height: height as u32, pixels }
    }

    /// Pixels across.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Pixels down.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major RGB8, `width * 3` bytes a row.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels, by value.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// The pixel at (x, y), as [r, g, b]. Panics outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(x < self.width && y < self.height, "pixel ({x}, {y}) is outside {}x{}", self.width, self.height);
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Writes the image as a PNG file through the library (the file appears
    /// whole or not at all); the bytes equal [`Image::png_bytes`]. The file's
    /// errors (`NotFound` for a missing folder, ...) name the path.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let utf8 = path
            .to_str()
            .ok_or_else(|| Error::new(Code::InvalidArgument, format!("path {} is not UTF-8", path.display())))?;
        let path = c_string(utf8, "path")?;
        let img = self.raw();
        check(|err| unsafe { sys::tp_image_write_png(&img, path.as_ptr(), err) })
    }

    /// The image encoded as PNG by the library.
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        let img = self.raw();
        let mut size = 0;
        // Ask for the size first: with capacity 0 the library reports it as ResourceExhausted.
        match check(|err| unsafe { sys::tp_image_encode_png(&mut size, ptr::null_mut(), 0, &img, err) }) {
            Err(e) if e.code() == Code::ResourceExhausted => {}
            Err(e) => return Err(e),
            Ok(()) => return Ok(Vec::new()),
        }
        let mut png = vec![0u8; size];
        check(|err| unsafe { sys::tp_image_encode_png(&mut size, png.as_mut_ptr(), png.len(), &img, err) })?;
        png.truncate(size);
        Ok(png)
    }

    /// A tp_image borrowing `self.pixels`.
    fn raw(&self) -> sys::tp_image {
        sys::tp_image {
            struct_size: size_of::<sys::tp_image>() as u32,
            width: self.width as i32,
            height: self.height as i32,
            stride: (self.width * 3) as i32,
            pixels: self.pixels.as_ptr(),
        }
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image").field("width", &self.width).field("height", &self.height).finish_non_exhaustive()
    }
}
