//! Preallocated, batched key/value cache for incremental decoding. Each layer owns one key and one value buffer of
//! shape [B, H_kv, T_max, D] allocated once; a step writes its slice in place (no per-step concatenation) and
//! attention reads the `[0, len)` prefix as a view. Alongside, the cache keeps which slots hold real tokens (left
//! padding is masked out) and the next position id of every row, so position ids continue exactly as the
//! reference's `cumsum(attention_mask) - 1` does. Rows can be reordered or repeated (n samples per prompt share
//! one prefill).
use tch::{Device, Kind, Tensor};

use crate::config::Emu3Config;
use crate::error::{Error, Result};

/// Per-layer key/value buffers of a batch plus its padding mask and next position ids. Fields are private: the
/// buffers, mask and length must stay consistent, so only [`crate::model::Emu3ForCausalLM::forward`] and the row
/// operations here change them.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,   // per layer [B, H_kv, T_max, D]
    values: Vec<Tensor>, // per layer [B, H_kv, T_max, D]
    valid: Tensor,       // [B, T_max] bool: slot holds a real (non-padding) token
    next_pos: Tensor,    // [B] i64: position id of the next real token of each row
    len: i64,
    max_len: i64,
}

impl KvCache {
    /// Allocates a cache for `batch` rows of up to `max_len` tokens.
    pub fn new(cfg: &Emu3Config, batch: i64, max_len: i64, kind: Kind, device: Device) -> Result<Self> {
        if batch <= 0 || max_len <= 0 {
            return Err(Error::input(format!("cache needs a positive batch and length, got {batch} × {max_len}")));
        }
        Self::check_fits(cfg, batch, max_len, kind, device)?;
        let made = crate::error::guard("allocating the KV cache", || {
            let shape = [batch, cfg.num_kv_heads, max_len, cfg.head_dim];
            // Named here, not "a tensor operation": an allocation failure then says what did not fit.
            let alloc =
                || Tensor::f_zeros(shape, (kind, device)).map_err(|e| Error::torch("allocating the KV cache", e));
            let keys = (0..cfg.num_layers).map(|_| alloc()).collect::<std::result::Result<Vec<_>, _>>()?;
            let values = (0..cfg.num_layers).map(|_| alloc()).collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(KvCache {
                keys,
                values,
                valid: Tensor::f_zeros([batch, max_len], (Kind::Bool, device))
                    .map_err(|e| Error::torch("allocating the KV cache", e))?,
                next_pos: Tensor::f_zeros([batch], (Kind::Int64, device))?,
                len: 0,
                max_len,
            })
        });
        // A GPU says "out of memory" only when asked: say then how much the cache needed and which flag lowers it.
        made.map_err(|e| {
            if e.to_string().contains("out of memory") {
                too_big(cfg, batch, max_len, kind, format!("{device:?} could give"))
            } else {
                e
            }
        })
    }

    /// Refuses, before anything is allocated, a cache of `batch` × `max_len` that the host cannot hold. On the CPU
    /// an oversized zero-filled cache is not refused by the allocator but killed by the kernel later (seen at 24 GB
    /// with `--samples 100000`). The generation engine calls this with the forked row count before its prefill.
    pub fn check_fits(cfg: &Emu3Config, batch: i64, max_len: i64, kind: Kind, device: Device) -> Result<()> {
        if device == Device::Cpu {
            if let Some(avail) = available_host_memory() {
                if Self::bytes_needed(cfg, batch, max_len, kind) > avail {
                    let have = format!("the {} of memory available", gib(avail));
                    return Err(too_big(cfg, batch, max_len, kind, have));
                }
            }
        }
        Ok(())
    }

    /// Bytes of the key and value buffers of a cache of `batch` × `max_len` positions.
    pub fn bytes_needed(cfg: &Emu3Config, batch: i64, max_len: i64, kind: Kind) -> u64 {
        let per_layer = batch as u64 * cfg.num_kv_heads as u64 * max_len as u64 * cfg.head_dim as u64;
        2 * cfg.num_layers as u64 * per_layer * kind.elt_size_in_bytes() as u64
    }

    /// Tokens stored per row (padding slots included).
    pub fn len(&self) -> i64 {
        self.len
    }
    /// Whether no token is stored yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Tokens per row the buffers were allocated for (`max_len` of [`Self::new`]).
    pub fn capacity(&self) -> i64 {
        self.max_len
    }
    /// Rows in the batch.
    pub fn batch(&self) -> i64 {
        self.valid.size()[0]
    }
    /// Decoder layers cached (one key and one value buffer each).
    pub fn num_layers(&self) -> usize {
        self.keys.len()
    }
    /// Device of the buffers.
    pub fn device(&self) -> Device {
        self.valid.device()
    }

    /// Layer `layer`'s key and value buffers [B, H_kv, T_max, D], for the graph engine's copy into its static ones.
    pub(crate) fn layer_buffers(&self, layer: usize) -> (&Tensor, &Tensor) {
        (&self.keys[layer], &self.values[layer])
    }
    /// Which slots hold real tokens, [B, T_max] bool.
    pub(crate) fn valid_slots(&self) -> &Tensor {
        &self.valid
    }
    /// Position id of each row's next real token, [B] i64.
    pub(crate) fn next_positions(&self) -> &Tensor {
        &self.next_pos
    }

    /// Forgets all tokens; buffers are kept.
    pub fn reset(&mut self) {
        self.len = 0;
        let _ = self.valid.zero_();
        let _ = self.next_pos.zero_();
    }

    /// Starts a step of `mask.size(1)` new tokens: records which are real and returns their position ids [B, T]
    /// (continuing each row's count; padding positions get 1, as the reference does) and the validity of every
    /// slot [B, T_max] (false for slots not written yet).
    pub(crate) fn begin_step(&mut self, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = (mask.size()[0], mask.size()[1]);
        if b != self.batch() {
            return Err(Error::input(format!("batch of {b} rows does not match the cache's {}", self.batch())));
        }
        if self.len + t > self.max_len {
            return Err(Error::input(format!(
                "cache overflow: {} cached + {t} new tokens exceeds its capacity of {}",
                self.len, self.max_len
            )));
        }
        let mask = mask.to_kind(Kind::Bool);
        self.valid.narrow(1, self.len, t).copy_(&mask);
        let m = mask.to_kind(Kind::Int64);
        let pos = (self.next_pos.unsqueeze(1) + m.cumsum(1, Kind::Int64) - 1).masked_fill(&mask.logical_not(), 1);
        Ok((pos, self.valid.shallow_clone()))
    }

    /// Writes a layer's new keys/values [B, H_kv, T, D] at the current step and returns the layer's whole
    /// buffers, [B, H_kv, T_max, D] (slots after the step are masked by the caller).
    pub(crate) fn write(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        self.keys[layer].narrow(2, self.len, t).copy_(k);
        self.values[layer].narrow(2, self.len, t).copy_(v);
        (self.keys[layer].shallow_clone(), self.values[layer].shallow_clone())
    }

    /// Ends a step started by [`begin_step`](Self::begin_step).
    pub(crate) fn end_step(&mut self, mask: &Tensor) {
        self.len += mask.size()[1];
        self.next_pos += mask.to_kind(Kind::Int64).sum_dim_intlist(1, false, Kind::Int64);
    }

    /// Keeps rows `index` [B'] (i64, may repeat): beam/sample bookkeeping and n samples sharing one prefill.
    pub fn select_rows(&mut self, index: &Tensor) -> Result<()> {
        let b = self.batch();
        // Checked where the index lives (no device sync for host indices), then moved.
        let idx = index.to_kind(Kind::Int64);
        if idx.dim() != 1 || idx.numel() == 0 {
            return Err(Error::input("row index must be a non-empty 1-D tensor"));
        }
        let (lo, hi) = (idx.min().int64_value(&[]), idx.max().int64_value(&[]));
        if lo < 0 || hi >= b {
            return Err(Error::input(format!("row index out of range [0, {b}): {lo}..={hi}")));
        }
        let idx = idx.to_device(self.device());
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, &idx);
        }
        self.valid = self.valid.index_select(0, &idx);
        self.next_pos = self.next_pos.index_select(0, &idx);
        Ok(())
    }

    /// Repeats every row `n` times in place (row i becomes rows i·n .. i·n+n-1).
    pub fn repeat_rows(&mut self, n: i64) -> Result<()> {
        if n <= 0 {
            return Err(Error::input(format!("repeat count must be positive, got {n}")));
        }
        let idx = Tensor::arange(self.batch(), (Kind::Int64, self.device())).repeat_interleave_self_int(n, 0, None);
        self.select_rows(&idx)
    }
}

fn too_big(cfg: &Emu3Config, batch: i64, max_len: i64, kind: Kind, have: String) -> Error {
    Error::input(format!(
        "the KV cache for {batch} sequences × {max_len} positions needs {}, more than {have}; lower the number of \
         samples (--samples) or the new tokens (--max-new-tokens)",
        gib(KvCache::bytes_needed(cfg, batch, max_len, kind))
    ))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `MemAvailable` of /proc/meminfo (Linux), in bytes; `None` where it cannot be read.
fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(batch: i64, max_len: i64) -> KvCache {
        let cfg = Emu3Config { num_layers: 2, num_kv_heads: 1, head_dim: 2, ..Emu3Config::tiny() };
        KvCache::new(&cfg, batch, max_len, Kind::Float, Device::Cpu).unwrap()
    }

    fn vec_i64(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t.flatten(0, -1).to_kind(Kind::Int64)).unwrap()
    }

    #[test]
    fn an_oversized_cache_is_refused_before_allocation() {
        // 8.5B shapes, 100 000 samples × 4096 positions: about 50 TiB, more than any host has.
        let cfg = Emu3Config::emu3_8b();
        let e = KvCache::new(&cfg, 100_000, 4096, Kind::BFloat16, Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("100000 sequences × 4096 positions needs") && e.contains("--samples"), "{e}");
        assert_eq!(KvCache::bytes_needed(&cfg, 1, 4096, Kind::BFloat16), 2 * 32 * 8 * 4096 * 128 * 2);
    }

    #[test]
    fn positions_continue_across_steps_with_left_padding() {
        let mut c = cache(2, 8);
        let m0 = Tensor::from_slice2(&[[1i64, 1, 1], [0, 0, 1]]);
        let (p0, valid) = c.begin_step(&m0).unwrap();
        assert_eq!(vec_i64(&p0), vec![0, 1, 2, 1, 1, 0]);
        assert_eq!(vec_i64(&valid.narrow(1, 0, 3)), vec![1, 1, 1, 0, 0, 1]);
        c.end_step(&m0);
        let m1 = Tensor::from_slice2(&[[1i64], [1]]);
        let (p1, valid) = c.begin_step(&m1).unwrap();
        assert_eq!(vec_i64(&p1), vec![3, 1]);
        assert_eq!(valid.size(), vec![2, 8]);
        assert_eq!(vec_i64(&valid.narrow(1, 3, 1)), vec![1, 1]);
        assert_eq!(vec_i64(&valid.narrow(1, 4, 4)), vec![0; 8]);
        c.end_step(&m1);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn write_stores_in_place_and_returns_the_prefix() {
        let mut c = cache(1, 4);
        let m = Tensor::from_slice2(&[[1i64, 1]]);
        let _ = c.begin_step(&m).unwrap();
        let k = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
        let (kk, vv) = c.write(0, &k, &(&k * 10.0));
        c.end_step(&m);
        assert_eq!(kk.size(), vec![1, 1, 4, 2]);
        assert!(kk.narrow(2, 0, 2).equal(&k) && vv.narrow(2, 0, 2).equal(&(&k * 10.0)));
        let m = Tensor::from_slice2(&[[1i64]]);
        let _ = c.begin_step(&m).unwrap();
        let k2 = Tensor::from_slice(&[5f32, 6.]).view([1, 1, 1, 2]);
        let (kk, _) = c.write(0, &k2, &k2);
        assert_eq!(Vec::<f32>::try_from(kk.flatten(0, -1)).unwrap(), vec![1., 2., 3., 4., 5., 6., 0., 0.]);
    }

    #[test]
    fn overflow_and_batch_mismatch_are_errors() {
        let mut c = cache(1, 2);
        assert!(c.begin_step(&Tensor::ones([1, 3], (Kind::Int64, Device::Cpu))).is_err());
        assert!(c.begin_step(&Tensor::ones([2, 1], (Kind::Int64, Device::Cpu))).is_err());
    }

    #[test]
    fn repeat_rows_copies_state() {
        let mut c = cache(2, 4);
        let m = Tensor::from_slice2(&[[1i64, 1], [0, 1]]);
        let _ = c.begin_step(&m).unwrap();
        c.end_step(&m);
        c.repeat_rows(2).unwrap();
        assert_eq!(c.batch(), 4);
        assert_eq!(vec_i64(&c.next_pos), vec![2, 2, 1, 1]);
        assert!(c.select_rows(&Tensor::from_slice(&[4i64])).is_err());
        c.reset();
        assert!(c.is_empty());
    }
}
