//! Conversions between host arrays (`ndarray`, what datasets own and files
//! hold) and `tch` tensors (what the physics computes on), and device helpers.
//!
//! Complex tensors are complex64 (`Kind::ComplexFloat`); on the host they are
//! `num_complex::Complex32`, laid out as interleaved (re, im) pairs exactly as
//! libtorch stores them.
use ndarray::{Array, ArrayD, Dimension, IxDyn};
use num_complex::Complex32;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// The device to compute on: CUDA when present, else CPU.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto`.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "auto" => Ok(default_device()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda_or_error(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda_or_error(i),
            _ => Err(Error::config(
                "device",
                format!("`{other}` is not one of cpu, cuda, cuda:N, auto"),
            )),
        },
    }
}

fn cuda_or_error(index: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if index < count {
        Ok(Device::Cuda(index))
    } else {
        Err(Error::config(
            "device",
            format!("cuda:{index} requested but this machine has {count} CUDA device(s)"),
        ))
    }
}

fn dims_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn tensor_shape(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}

/// f32 array → f32 tensor on `device`.
pub fn f32_to_tensor<D: Dimension>(a: &Array<f32, D>, device: Device) -> Tensor {
    let a = a.as_standard_layout();
    let slice = a.as_slice().expect("standard layout is contiguous");
    Tensor::from_slice(slice).reshape(dims_i64(a.shape())).to_device(device)
}

/// f64 array → f64 tensor on `device`.
pub fn f64_to_tensor<D: Dimension>(a: &Array<f64, D>, device: Device) -> Tensor {
    let a = a.as_standard_layout();
    let slice = a.as_slice().expect("standard layout is contiguous");
    Tensor::from_slice(slice).reshape(dims_i64(a.shape())).to_device(device)
}

/// complex64 array → complex64 tensor on `device`.
pub fn c64_to_tensor<D: Dimension>(a: &Array<Complex32, D>, device: Device) -> Tensor {
    let a = a.as_standard_layout();
    let slice = a.as_slice().expect("standard layout is contiguous");
    // Complex32 is #[repr(C)] (re, im): view it as interleaved f32 pairs.
    let floats: &[f32] = unsafe { std::slice::from_raw_parts(slice.as_ptr() as *const f32, slice.len() * 2) };
    let mut shape = dims_i64(a.shape());
    shape.push(2);
    Tensor::from_slice(floats)
        .reshape(shape)
        .view_as_complex()
        .to_device(device)
}

/// Element types whose tensors [`host_values`] can borrow.
pub trait HostElement: Copy {
    /// The tensor kind holding this type.
    const KIND: Kind;
}

impl HostElement for f32 {
    const KIND: Kind = Kind::Float;
}

impl HostElement for Complex32 {
    const KIND: Kind = Kind::ComplexFloat;
}

impl HostElement for i64 {
    const KIND: Kind = Kind::Int64;
}

/// An error unless `t` is a contiguous CPU tensor of `T`'s kind.
fn check_host<T: HostElement>(t: &Tensor) -> Result<()> {
    if t.device() != Device::Cpu || !t.is_contiguous() || t.kind() != T::KIND {
        return Err(Error::value(
            "tensor",
            format!(
                "expected a contiguous CPU {:?} tensor, got a {}{:?} {:?} one",
                T::KIND,
                if t.is_contiguous() { "" } else { "strided " },
                t.device(),
                t.kind()
            ),
        ));
    }
    Ok(())
}

/// The values of `t` in memory order, borrowed without a copy; an error
/// unless `t` is a contiguous CPU tensor of `T`'s kind.
pub fn host_values<T: HostElement>(t: &Tensor) -> Result<&[T]> {
    check_host::<T>(t)?;
    let len = t.numel();
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `t` is a contiguous CPU tensor of `len` values of `T`'s kind
    // (checked above; `data_ptr` includes the storage offset), and the
    // slice borrows `t`, so the storage outlives it.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, len) })
}

/// [`host_values`], writable: for filling a tensor in place on the host.
///
/// # Safety
/// No other tensor (a view or a shallow clone) may share `t`'s storage while
/// the slice lives; a tensor the caller has just created satisfies this.
pub unsafe fn host_values_mut<T: HostElement>(t: &mut Tensor) -> Result<&mut [T]> {
    check_host::<T>(t)?;
    let len = t.numel();
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `host_values`, and the caller guarantees that nothing
    // else reads or writes the storage while the slice lives.
    Ok(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, len) })
}

/// Any real tensor (any device, any float kind) → f32 array with its shape.
pub fn tensor_to_f32(t: &Tensor) -> Result<ArrayD<f32>> {
    let shape = tensor_shape(t);
    let flat = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1);
    let v = Vec::<f32>::try_from(&flat)?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), v).expect("element count agrees"))
}

/// complex tensor → complex64 array with the tensor's shape.
pub fn tensor_to_c64(t: &Tensor) -> Result<ArrayD<Complex32>> {
    let shape = tensor_shape(t);
    let real = t
        .to_device(Device::Cpu)
        .to_kind(Kind::ComplexFloat)
        .contiguous()
        .view_as_real()
        .contiguous()
        .view(-1);
    let v = Vec::<f32>::try_from(&real)?;
    let c: Vec<Complex32> = v.chunks_exact(2).map(|p| Complex32::new(p[0], p[1])).collect();
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), c).expect("element count agrees"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn host_values_borrow_contiguous_cpu_tensors_only() {
        let t = Tensor::arange(12, (Kind::Float, Device::Cpu)).view([3, 4]);
        let expected = Vec::<f32>::try_from(&t.view(-1)).unwrap();
        assert_eq!(host_values::<f32>(&t).unwrap(), expected.as_slice());
        // a narrowed row starts at its storage offset
        let row = t.narrow(0, 1, 1);
        assert_eq!(host_values::<f32>(&row).unwrap(), &expected[4..8]);
        let z = Tensor::complex(&t, &(-&t));
        assert_eq!(host_values::<Complex32>(&z).unwrap()[5], Complex32::new(5.0, -5.0));
        // strided, another kind, and a write into a new tensor
        let e = host_values::<f32>(&t.tr()).unwrap_err().to_string();
        assert!(e.contains("strided"), "{e}");
        assert!(host_values::<Complex32>(&t).is_err());
        assert!(host_values::<f32>(&t.to_kind(Kind::Double)).is_err());
        let mut out = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        // SAFETY: `out` is new and shares its storage with nothing
        let values = unsafe { host_values_mut::<f32>(&mut out).unwrap() };
        values[3] = 7.0;
        assert_eq!(out.double_value(&[1, 1]), 7.0);
    }

    #[test]
    fn complex_round_trip_is_exact() {
        let a: Array2<Complex32> = array![
            [Complex32::new(1.0, -2.0), Complex32::new(0.5, 3.25)],
            [Complex32::new(-7.0, 0.0), Complex32::new(1e-8, 1e8)]
        ];
        let t = c64_to_tensor(&a, Device::Cpu);
        assert_eq!(t.size(), vec![2, 2]);
        assert_eq!(t.kind(), Kind::ComplexFloat);
        // element (1, 0) seen through libtorch's own real view
        let re = t.real().double_value(&[1, 0]);
        assert_eq!(re, -7.0);
        let back = tensor_to_c64(&t).unwrap();
        assert_eq!(back.into_dimensionality::<ndarray::Ix2>().unwrap(), a);
    }

    #[test]
    fn f32_round_trip_keeps_shape_and_order() {
        let a = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let t = f32_to_tensor(&a, Device::Cpu);
        assert_eq!(t.double_value(&[1, 2, 3]), 123.0);
        let back = tensor_to_f32(&t).unwrap();
        assert_eq!(back, a.into_dyn());
    }

    #[test]
    fn parse_device_rejects_unknown_names() {
        assert!(parse_device("cpu").is_ok());
        assert!(parse_device("tpu").is_err());
    }
}
