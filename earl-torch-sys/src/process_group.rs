//! The seam for distributed training: [`ProcessGroup`], the collective operations a data-parallel trainer needs
//! (c10d's `ProcessGroup` reduced to rank, world size, all-reduce, broadcast and barrier), and [`LocalGroup`], the
//! single-process group (world size 1) every run uses today.
//!
//! Where the real groups plug in: a later `NcclGroup` (and `GlooGroup` for CPU tests) implements this trait over
//! `c10d::ProcessGroupNCCL` / `ProcessGroupGloo` through new functions of the C++ shim (`shim/earl_torch_shim.cpp`),
//! created from a `c10d::TCPStore` rendezvous (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, as torchrun sets them).
//! Training code takes a `&dyn ProcessGroup` and calls `all_reduce(grads, ReduceOp::Avg)` after backward and
//! `broadcast(params, 0)` at start-up; with a [`LocalGroup`] those are no-ops, so single-GPU behaviour is unchanged.
use crate::error::{Error, Result};
use tch::Tensor;

/// How [`ProcessGroup::all_reduce`] combines the ranks' tensors (c10d's `ReduceOp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    /// The mean over ranks (NCCL's `avg`).
    Avg,
    Product,
    Min,
    Max,
}

/// A group of processes that run collectives together. Every member must call the same collectives in the same
/// order with tensors of the same shapes; the calls are in place on the given tensors.
pub trait ProcessGroup: Send {
    /// This process's rank, in `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of processes in the group.
    fn world_size(&self) -> usize;
    /// Replaces every tensor by its reduction over all ranks.
    fn all_reduce(&self, tensors: &[Tensor], op: ReduceOp) -> Result<()>;
    /// Replaces every tensor by rank `root`'s.
    fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
}

/// The group of one process: rank 0 of world size 1. Every reduction over one rank is the tensor itself, so all
/// collectives leave their tensors unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalGroup;

impl ProcessGroup for LocalGroup {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce(&self, _tensors: &[Tensor], _op: ReduceOp) -> Result<()> {
        Ok(())
    }

    fn broadcast(&self, _tensors: &[Tensor], root: usize) -> Result<()> {
        if root == 0 {
            Ok(())
        } else {
            Err(Error::InvalidArgument { op: "broadcast", message: format!("root rank {root} not in a group of 1") })
        }
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> Vec<Tensor> {
        vec![Tensor::from_slice(&[1.5f32, -2.0]), Tensor::from_slice(&[3i64, 4, 5])]
    }

    #[test]
    fn local_group_is_rank_0_of_1() {
        let group: Box<dyn ProcessGroup> = Box::new(LocalGroup);
        assert_eq!((group.rank(), group.world_size()), (0, 1));
        group.barrier().unwrap();
    }

    #[test]
    fn local_all_reduce_is_the_identity_for_every_op() {
        for op in [ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Product, ReduceOp::Min, ReduceOp::Max] {
            let ts = tensors();
            LocalGroup.all_reduce(&ts, op).unwrap();
            for (got, want) in ts.iter().zip(tensors()) {
                assert!(got.equal(&want), "{op:?}");
            }
        }
    }

    #[test]
    fn local_broadcast_accepts_root_0_only() {
        let ts = tensors();
        LocalGroup.broadcast(&ts, 0).unwrap();
        assert!(ts[0].equal(&tensors()[0]));
        let err = LocalGroup.broadcast(&ts, 1).unwrap_err();
        assert_eq!(err.to_string(), "broadcast: root rank 1 not in a group of 1");
    }
}
