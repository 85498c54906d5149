//! Mixed-precision regions: libtorch's autocast on any device, to float16
//! or bfloat16.
//!
//! Inside [`autocast`], the operations libtorch lists for lower precision
//! (convolutions, matrix products) run in the region's dtype on the given
//! device and the numerically sensitive ones (reductions, losses) in
//! float32, as in PyTorch's `torch.autocast(device_type, dtype)`. Operations
//! that are in neither list keep their inputs' dtype, so an activation after
//! a convolution runs in the lower precision too. The backward pass follows
//! the dtypes of the forward pass; it needs no region of its own.
//!
//! `tch` only switches CUDA autocast, in float16. libtorch's own functions
//! (`at::autocast::set_autocast_enabled(DeviceType, bool)` and
//! `set_autocast_dtype(DeviceType, ScalarType)`, torch ≥ 2.4) are reached
//! by their symbols, looked up on first use: an error, not a failure to
//! start, where a libtorch lacks them. Autocast state is per thread in
//! libtorch, so a region covers the calling thread only.
use std::ffi::c_void;
use std::sync::OnceLock;

use tch::{Device, Kind};

use crate::error::{Error, Result};

/// Runs `f` with autocast to `kind` (`Half` or `BFloat16`) on `device`'s
/// type, then puts the thread's previous autocast state for that device
/// type back (also when `f` panics). Regions nest.
///
/// ```no_run
/// # use ptycho_workbench::tch::{Device, Kind, Tensor};
/// # fn main() -> ptycho_workbench::Result<()> {
/// let x = Tensor::rand([8, 16], (Kind::Float, Device::Cpu));
/// let w = Tensor::rand([16, 4], (Kind::Float, Device::Cpu));
/// let y = ptycho_workbench::autocast::autocast(Device::Cpu, Kind::BFloat16, || x.matmul(&w))?;
/// assert_eq!(y.kind(), Kind::BFloat16);
/// # Ok(())
/// # }
/// ```
pub fn autocast<T>(device: Device, kind: Kind, f: impl FnOnce() -> T) -> Result<T> {
    let dtype = match kind {
        Kind::Half => HALF,
        Kind::BFloat16 => BFLOAT16,
        other => {
            return Err(Error::value(
                "autocast dtype",
                format!("{other:?} is not a lower precision (Half or BFloat16)"),
            ));
        }
    };
    let api = api()?;
    let device_type = device_type(device);
    let _region = Region::enter(api, device_type, dtype);
    Ok(f())
}

/// Whether autocast is on for `device`'s type on this thread, and the dtype
/// it casts to (`Half`, `BFloat16` or `Float`; `None` for any other).
pub fn autocast_state(device: Device) -> Result<(bool, Option<Kind>)> {
    let api = api()?;
    let device_type = device_type(device);
    // SAFETY: libtorch's own functions with these signatures (`api`)
    let (enabled, dtype) = unsafe { ((api.is_enabled)(device_type), (api.get_dtype)(device_type)) };
    let kind = match dtype {
        HALF => Some(Kind::Half),
        BFLOAT16 => Some(Kind::BFloat16),
        FLOAT => Some(Kind::Float),
        _ => None,
    };
    Ok((enabled, kind))
}

// c10::ScalarType and c10::DeviceType values (both `enum class : int8_t`)
const HALF: i8 = 5;
const FLOAT: i8 = 6;
const BFLOAT16: i8 = 15;
const CPU: i8 = 0;
const CUDA: i8 = 1;

fn device_type(device: Device) -> i8 {
    if device.is_cuda() { CUDA } else { CPU }
}

/// One autocast region on the calling thread: entered in `enter`, left
/// (the previous state put back) when dropped.
struct Region {
    api: &'static Api,
    device_type: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl Region {
    fn enter(api: &'static Api, device_type: i8, dtype: i8) -> Region {
        // SAFETY: libtorch's own functions with these signatures (`api`);
        // they read and write the calling thread's autocast state.
        unsafe {
            let region = Region {
                api,
                device_type,
                was_enabled: (api.is_enabled)(device_type),
                was_dtype: (api.get_dtype)(device_type),
            };
            (api.set_dtype)(device_type, dtype);
            (api.set_enabled)(device_type, true);
            (api.increment_nesting)();
            region
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let api = self.api;
        // SAFETY: as in `enter`. Leaving the outermost region drops the
        // weights cast inside it: they change with the next optimiser step.
        unsafe {
            if (api.decrement_nesting)() == 0 {
                (api.clear_cache)();
            }
            (api.set_enabled)(self.device_type, self.was_enabled);
            (api.set_dtype)(self.device_type, self.was_dtype);
        }
    }
}

/// libtorch's autocast functions (Itanium C++ ABI: an `enum class` of
/// int8 is an i8, `bool` a bool).
struct Api {
    is_enabled: unsafe extern "C" fn(i8) -> bool,
    set_enabled: unsafe extern "C" fn(i8, bool),
    get_dtype: unsafe extern "C" fn(i8) -> i8,
    set_dtype: unsafe extern "C" fn(i8, i8),
    increment_nesting: unsafe extern "C" fn() -> i32,
    decrement_nesting: unsafe extern "C" fn() -> i32,
    clear_cache: unsafe extern "C" fn(),
}

fn api() -> Result<&'static Api> {
    static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| load().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|reason| Error::External {
            program: "libtorch".into(),
            reason: reason.clone(),
        })
}

fn load() -> Result<Api> {
    let find = |name: &str| crate::runtime::libtorch_symbol(name, "has no autocast for any device and dtype");
    let is_enabled = find("_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE")?;
    let set_enabled = find("_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb")?;
    let get_dtype = find("_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE")?;
    let set_dtype = find("_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE")?;
    let increment = find("_ZN2at8autocast17increment_nestingEv")?;
    let decrement = find("_ZN2at8autocast17decrement_nestingEv")?;
    let clear = find("_ZN2at8autocast11clear_cacheEv")?;
    // SAFETY: the symbols are these functions of libtorch, which stays
    // loaded as long as the process (it is linked); the signatures are
    // their C++ declarations in ATen/autocast_mode.h.
    unsafe {
        Ok(Api {
            is_enabled: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(i8) -> bool>(is_enabled),
            set_enabled: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(i8, bool)>(set_enabled),
            get_dtype: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(i8) -> i8>(get_dtype),
            set_dtype: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(i8, i8)>(set_dtype),
            increment_nesting: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(increment),
            decrement_nesting: std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(decrement),
            clear_cache: std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(clear),
        })
    }
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use super::*;

    fn operands() -> (Tensor, Tensor) {
        tch::manual_seed(0);
        (
            Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)),
            Tensor::rand([8, 3, 3, 3], (Kind::Float, Device::Cpu)),
        )
    }

    #[test]
    fn a_convolution_runs_in_bfloat16_inside_and_float32_after() {
        let (x, w) = operands();
        let conv = || x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        let (inside, mean) = autocast(Device::Cpu, Kind::BFloat16, || {
            let y = conv();
            // a reduction is on autocast's float32 list
            (y.kind(), y.mean(Kind::Float).kind())
        })
        .unwrap();
        assert_eq!(inside, Kind::BFloat16);
        assert_eq!(mean, Kind::Float);
        let after = conv();
        assert_eq!(after.kind(), Kind::Float);
        // the same convolution, within bfloat16's rounding (8-bit mantissa,
        // 27 products summed) of float32, but not equal to it
        let low = autocast(Device::Cpu, Kind::BFloat16, conv)
            .unwrap()
            .to_kind(Kind::Float);
        let rel = f64::try_from((&low - &after).abs().max()).unwrap() / f64::try_from(after.abs().max()).unwrap();
        assert!(rel > 0.0 && rel < 2e-2, "relative difference {rel}");
    }

    #[test]
    fn regions_nest_and_the_previous_state_comes_back() {
        let before = autocast_state(Device::Cpu).unwrap();
        assert!(!before.0);
        autocast(Device::Cpu, Kind::BFloat16, || {
            assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Some(Kind::BFloat16)));
            autocast(Device::Cpu, Kind::Half, || {
                assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Some(Kind::Half)));
            })
            .unwrap();
            assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Some(Kind::BFloat16)));
        })
        .unwrap();
        assert_eq!(autocast_state(Device::Cpu).unwrap(), before);
        // a panic inside a region leaves it too
        let caught = std::panic::catch_unwind(|| autocast(Device::Cpu, Kind::BFloat16, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(autocast_state(Device::Cpu).unwrap(), before);
    }

    #[test]
    fn a_float32_region_is_refused() {
        let e = autocast(Device::Cpu, Kind::Float, || ()).unwrap_err();
        assert!(e.to_string().contains("not a lower precision"), "{e}");
    }
}
