//! Unit tests of the VQ model on random weights (numerical parity with the reference is in tests/vq_parity.rs).
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

use super::*;

fn tiny() -> Emu3VqModel {
    Emu3VqModel::load(&VqRandomSource::new(3, Kind::Float, Device::Cpu), VqConfig::tiny()).unwrap()
}

fn images(b: i64, h: i64, w: i64) -> Tensor {
    tch::manual_seed(11);
    Tensor::rand([b, 3, h, w], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

#[test]
fn encoding_each_image_once_equals_the_reference_path() {
    let m = tiny();
    let x = images(2, 16, 24);
    let fast = m.encode(&x).unwrap();
    let slow = m.encode_video_frames(&x).unwrap();
    assert_eq!(fast.size(), [2, 2, 3]);
    assert_eq!(fast, slow);
}

#[test]
fn bad_inputs_are_errors() {
    let m = tiny();
    let e = m.encode(&images(1, 7, 16)).unwrap_err().to_string();
    assert!(e.contains("smaller than one code of the spatial factor 8"), "{e}");
    let e = m.encode(&Tensor::zeros([1, 4, 8, 8], (Kind::Float, Device::Cpu))).unwrap_err().to_string();
    assert!(e.contains("images must be [B, 3, H, W]"), "{e}");
    let e = m.decode(&Tensor::from_slice(&[0i64, 64]).view([1, 1, 2])).unwrap_err().to_string();
    assert!(e.contains("code 64 is outside the codebook (valid: 0..63)"), "{e}");
    let e = m.decode(&Tensor::from_slice(&[-1i64, 3]).view([1, 1, 2])).unwrap_err().to_string();
    assert!(e.contains("code -1 is outside"), "{e}");
    let e = m.decode(&Tensor::from_slice(&[1i64, 3]).view([1, 2])).unwrap_err().to_string();
    assert!(e.contains("codes must be [B, h, w]"), "{e}");
    let e = m.decode(&Tensor::from_slice(&[1f32, 3.]).view([1, 1, 2])).unwrap_err().to_string();
    assert!(e.contains("must be integers"), "{e}");
}

#[test]
fn random_weights_decode_finite_pixels() {
    let m = tiny();
    let codes = m.encode(&images(1, 32, 32)).unwrap();
    let out = m.decode(&codes).unwrap();
    assert_eq!(out.size(), [1, 3, 32, 32]);
    assert!(bool::try_from(out.isfinite().all()).unwrap());
}

#[test]
fn sides_that_are_not_multiples_of_the_factor_are_floored() {
    // As the reference's stride-2 convolutions: 12×23 pixels → ⌊12/8⌋ × ⌊23/8⌋ = 1×2 codes, decoded to 8×16.
    let m = tiny();
    let codes = m.encode(&images(1, 12, 23)).unwrap();
    assert_eq!(codes.size(), [1, 1, 2]);
    assert_eq!(m.decode(&codes).unwrap().size(), [1, 3, 8, 16]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
    #[test]
    fn encode_decode_shapes_are_consistent(b in 1i64..3, h in 1i64..5, w in 1i64..5) {
        let m = tiny();
        let codes = m.encode(&images(b, 8 * h, 8 * w)).unwrap();
        prop_assert_eq!(codes.size(), vec![b, h, w]);
        prop_assert_eq!(codes.kind(), Kind::Int64);
        let out = m.decode(&codes).unwrap();
        prop_assert_eq!(out.size(), vec![b, 3, 8 * h, 8 * w]);
        // Decoding then encoding gives a grid of the same shape again.
        prop_assert_eq!(m.encode(&out).unwrap().size(), vec![b, h, w]);
    }
}
