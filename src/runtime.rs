//! Process-wide settings for long tensor work: the CPU allocator
//! ([`keep_freed_memory`]), cuDNN's autotuner ([`tune_cudnn`]), TF32 in
//! cuDNN's convolutions ([`set_cudnn_tf32`]), the network's activation
//! layout ([`channels_last`]) and libtorch's CPU threads
//! ([`SingleTorchThread`], [`one_torch_thread_per_worker`]).
//!
//! glibc's allocator returns every block above its mmap threshold (at most
//! 32 MiB) to the kernel when it is freed, and trims the heap's free top.
//! A training or inference step allocates and frees the same large
//! activations every step (a `[64, 64, 64, 64]` float32 activation is
//! 64 MiB), so each step the kernel maps fresh pages, zeroes them on first
//! touch and, on a multi-core (virtual) machine, flushes other cores' TLBs
//! when they are unmapped. Gridsize-2 inference at batch 64 on a 2-core
//! machine spent about 40 % of its time in the kernel this way
//! (docs/performance.md).
//!
//! [`keep_freed_memory`] tells the allocator to serve blocks from its heaps
//! and never trim them, so freed memory is reused by the next step: the
//! process keeps its peak memory (the trade PyTorch's CUDA caching
//! allocator makes on the GPU). It also keeps every thread created later in
//! the main arena: a thread's own arena grows in heaps of at most 64 MiB and
//! maps any larger block on its own, so a simulation run on a worker thread
//! (a thread pool, a notebook kernel, a study's jobs) mapped and zeroed its
//! 64 MiB of patterns afresh every time (a quarter of a simulation's time in
//! `ptycho bench simulate`). This holds fully only when it is called before
//! any other thread has allocated, as the CLI does first thing in `main`: a
//! thread that already has its own arena keeps it, and glibc then hands
//! later threads one of the existing arenas in turn, a thread's one
//! included. The library also calls it at the start of training, inference,
//! simulation and the iterative solver; set
//! `PTYCHO_KEEP_FREED_MEMORY=0` to keep glibc's defaults.
use std::ffi::c_void;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable that turns [`tune_cudnn`] off (`0`).
pub const CUDNN_BENCHMARK_ENV: &str = "PTYCHO_CUDNN_BENCHMARK";

/// On a CUDA `device`, turns on cuDNN's autotuner (`cudnn.benchmark` in
/// PyTorch, off by default there): the first convolution of each shape times
/// cuDNN's algorithms and later ones use the fastest. Training and inference
/// run the same shapes for thousands of steps, so the few slow first steps
/// pay back. Results stay within float rounding of the untuned algorithms
/// but are not bit-reproducible across runs. Returns whether it is on: false
/// on the CPU or with `PTYCHO_CUDNN_BENCHMARK=0`. The library calls it at
/// the start of training and inference on CUDA.
pub fn tune_cudnn(device: tch::Device) -> bool {
    if !device.is_cuda() || std::env::var(CUDNN_BENCHMARK_ENV).is_ok_and(|v| v.trim() == "0") {
        return false;
    }
    tch::Cuda::cudnn_set_benchmark(true);
    true
}

/// The environment variable that turns [`channels_last`] off (`0`).
pub const CHANNELS_LAST_ENV: &str = "PTYCHO_CHANNELS_LAST";

/// Whether the network keeps its activations channels-last (NHWC in
/// memory; the tensors keep their `[B, C, H, W]` shape): on unless
/// `PTYCHO_CHANNELS_LAST=0` (read once per process). oneDNN's and cuDNN's
/// convolutions, pooling and upsampling run on that layout without the
/// reorders NCHW needs. The convolutions' weights are kept channels-last
/// in memory too, or every convolution would copy its weight into that
/// layout in the forward and in the backward pass; files still hold them
/// in NCHW order (the format is unchanged). On a 2-core CPU it made
/// training steps 17–19 % and inference 28–35 % faster (docs/performance.md).
pub fn channels_last() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !std::env::var(CHANNELS_LAST_ENV).is_ok_and(|v| v.trim() == "0"))
}

/// Whether `x` (`[B, C, H, W]`) is dense with channels-last strides
/// `[H·W·C, 1, W·C, C]` (a dimension of size 1 may have any stride).
pub fn is_dense_channels_last(x: &tch::Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    if size.len() != 4 {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    let want = [h * w * c, 1, w * c, c];
    (0..4).all(|d| size[d] == 1 || stride[d] == want[d])
}

/// A copy of `x` (`[B, C, H, W]`) with dense channels-last strides: the
/// same shape and values, NHWC in memory.
pub fn to_channels_last(x: &tch::Tensor) -> tch::Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether cuDNN's float32 convolutions may use TF32 tensor cores (GPUs
/// from Ampere on): PyTorch's `torch.backends.cudnn.allow_tf32`, on by
/// default. Process-wide, like libtorch's own setting, and for the forward
/// and the backward pass of every later convolution.
///
/// `tch` has no binding for it, so libtorch's `at::Context` is reached by
/// its symbols, looked up when called (`dlsym`): an error, not a failure to
/// start, where a libtorch lacks them.
pub fn set_cudnn_tf32(allow: bool) -> Result<()> {
    let ctx = tf32_context()?;
    // SAFETY: `tf32_context` found libtorch's own functions; the types are
    // their Itanium C++ ABI signatures (`this` first).
    unsafe { (ctx.set_allow)(ctx.context, allow) };
    Ok(())
}

/// Whether cuDNN's float32 convolutions may use TF32 now (libtorch's
/// `float32Precision(CUDA, CONV)` is `TF32`).
pub fn cudnn_tf32() -> Result<bool> {
    let ctx = tf32_context()?;
    // at::Float32Backend::CUDA, at::Float32Op::CONV, at::Float32Precision::TF32
    const CUDA: i32 = 1;
    const CONV: i32 = 1;
    const TF32: i32 = 2;
    // SAFETY: as in `set_cudnn_tf32`; the enums are ints (`enum class` of int)
    Ok(unsafe { (ctx.precision)(ctx.context, CUDA, CONV) } == TF32)
}

/// libtorch's global context and the two member functions TF32 needs.
struct Tf32Context {
    context: *mut c_void,
    set_allow: SetAllowFn,
    precision: PrecisionFn,
}

// Itanium C++ ABI signatures: a member function takes `this` first, a
// reference is a pointer and an `enum class` of int is an int.
/// `at::Context& at::globalContext()`
type GlobalContextFn = unsafe extern "C" fn() -> *mut c_void;
/// `void at::Context::setAllowTF32CuDNN(bool)`
type SetAllowFn = unsafe extern "C" fn(*mut c_void, bool);
/// `Float32Precision at::Context::float32Precision(Float32Backend, Float32Op) const`
type PrecisionFn = unsafe extern "C" fn(*const c_void, i32, i32) -> i32;

fn tf32_context() -> Result<Tf32Context> {
    let find = |name: &str| libtorch_symbol(name, "cannot switch TF32 off");
    let global = find("_ZN2at13globalContextEv")?;
    let set_allow = find("_ZN2at7Context17setAllowTF32CuDNNEb")?;
    let precision = find("_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE")?;
    // SAFETY: the symbols are those functions, with those signatures;
    // globalContext returns a static that lives as long as the process.
    unsafe {
        let global = std::mem::transmute::<*mut c_void, GlobalContextFn>(global);
        Ok(Tf32Context {
            context: global(),
            set_allow: std::mem::transmute::<*mut c_void, SetAllowFn>(set_allow),
            precision: std::mem::transmute::<*mut c_void, PrecisionFn>(precision),
        })
    }
}

/// The address of one of libtorch's C++ functions by its mangled `name`,
/// for settings `tch` has no binding for; an error saying the libtorch
/// `lacking` (e.g. "cannot switch TF32 off") where it has no such symbol.
#[cfg(unix)]
pub(crate) fn libtorch_symbol(name: &str, lacking: &str) -> Result<*mut c_void> {
    // A call into libtorch through `tch`, so that libtorch is loaded (a
    // notebook cell's library that calls nothing else of libtorch would not
    // load it). Its symbols are then global in a program, but not where the
    // library that needs it was opened with RTLD_LOCAL (a notebook kernel's
    // compiled cells): then ask the loaded libtorch_cpu itself (RTLD_NOLOAD
    // never loads anything).
    let _ = tch::get_num_threads();
    let c_name = std::ffi::CString::new(name).expect("no NUL in a symbol name");
    // SAFETY: dlopen with RTLD_NOLOAD only returns a handle to a library
    // already loaded, or null; dlsym searches the global scope, then the
    // loaded libtorch, and a missing symbol is a null pointer.
    let f = unsafe {
        match libc::dlsym(libc::RTLD_DEFAULT, c_name.as_ptr()) {
            f if f.is_null() => {
                let libtorch = libc::dlopen(c"libtorch_cpu.so".as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY);
                if libtorch.is_null() {
                    f
                } else {
                    libc::dlsym(libtorch, c_name.as_ptr())
                }
            }
            f => f,
        }
    };
    if f.is_null() {
        return Err(Error::External {
            program: "libtorch".into(),
            reason: format!("has no `{name}`: this libtorch {lacking}"),
        });
    }
    Ok(f)
}

#[cfg(not(unix))]
pub(crate) fn libtorch_symbol(name: &str, lacking: &str) -> Result<*mut c_void> {
    Err(Error::External {
        program: "libtorch".into(),
        reason: format!("`{name}` is looked up on Unix only: this platform {lacking}"),
    })
}

/// The environment variable that turns [`keep_freed_memory`] off (`0`).
pub const KEEP_FREED_MEMORY_ENV: &str = "PTYCHO_KEEP_FREED_MEMORY";

/// The same allocator settings for a child process (a reference script),
/// as glibc tunables: `(variable, value)` (`i32::MAX`, as `mallopt` takes).
pub const GLIBC_TUNABLES: (&str, &str) = (
    "GLIBC_TUNABLES",
    "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647:glibc.malloc.arena_max=1",
);

/// Makes glibc's allocator keep freed memory for reuse (once per process;
/// later calls return the first answer). Returns whether the settings are
/// in force: false when turned off by `PTYCHO_KEEP_FREED_MEMORY=0` or on a
/// platform without glibc.
pub fn keep_freed_memory() -> bool {
    *APPLIED.get_or_init(|| {
        if std::env::var(KEEP_FREED_MEMORY_ENV).is_ok_and(|v| v.trim() == "0") {
            return false;
        }
        apply()
    })
}

/// Whether [`keep_freed_memory`] has run in this process and its settings
/// are in force (without applying them).
pub fn freed_memory_kept() -> bool {
    APPLIED.get().copied().unwrap_or(false)
}

static APPLIED: OnceLock<bool> = OnceLock::new();

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes the allocator's parameters; it is
    // thread-safe in glibc and takes effect for later allocations.
    unsafe {
        // no mmap for large blocks: they come from (and go back to) the heap
        let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
        // never give the heap's free top back to the kernel
        let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
        // no new arenas: threads created from now on share the existing ones
        // (the main one alone when no other thread has allocated yet), whose
        // heap has no size limit (a thread arena maps any block above 64 MiB
        // on its own)
        let one_arena = libc::mallopt(libc::M_ARENA_MAX, 1) == 1;
        no_mmap && no_trim && one_arena
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

/// Sets libtorch's intra-op threads to 1 and puts the previous count back
/// on drop. The count is libtorch's global setting plus the calling
/// thread's OpenMP setting; other threads keep theirs.
pub struct SingleTorchThread(i32);

impl SingleTorchThread {
    pub fn enter() -> SingleTorchThread {
        let previous = tch::get_num_threads();
        tch::set_num_threads(1);
        SingleTorchThread(previous)
    }
}

impl Drop for SingleTorchThread {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

/// Runs `f` with libtorch on one thread in every worker of the current
/// rayon pool (and in the caller), so that work split by rayon calls
/// libtorch ops that run inline: libtorch's own workers neither compete
/// with rayon's for the cores nor spin between ops. Each worker's count is
/// set back to the caller's previous one afterwards, also when `f` panics.
pub fn one_torch_thread_per_worker<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            rayon::broadcast(|_| tch::set_num_threads(previous));
            tch::set_num_threads(previous);
        }
    }
    let _restore = Restore(tch::get_num_threads());
    rayon::broadcast(|_| tch::set_num_threads(1));
    tch::set_num_threads(1);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn tf32_in_cudnn_convolutions_switches_off_and_back_on() {
        // libtorch's default is on; the setting is process-wide, so the test
        // puts it back
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        assert!(cudnn_tf32().unwrap(), "libtorch's default");
        set_cudnn_tf32(false).unwrap();
        let off = cudnn_tf32().unwrap();
        set_cudnn_tf32(true).unwrap();
        assert!(!off);
        assert!(cudnn_tf32().unwrap());
    }

    /// Minor page faults of the calling thread so far.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn thread_minor_faults() -> i64 {
        // SAFETY: getrusage writes into the zeroed struct we pass
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
            usage.ru_minflt
        }
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_freed_large_block_is_reused_without_new_page_faults() {
        if !keep_freed_memory() {
            return; // turned off by the environment: glibc's defaults apply
        }
        // 16 MiB (a test runs in a thread arena, which holds blocks up to
        // 64 MiB). By default the first one is mapped on its own and unmapped
        // when freed, and the second one grows the heap: both fault on every
        // page. Kept memory faults only the first time.
        let touch = || {
            let before = thread_minor_faults();
            let block = std::hint::black_box(vec![1u8; 16 << 20]);
            assert_eq!(block[block.len() - 1], 1);
            thread_minor_faults() - before
        };
        let first = touch();
        let second = touch();
        assert!(
            second * 4 <= first.max(16),
            "{first} faults on the first allocation, {second} on the second"
        );
    }
}
