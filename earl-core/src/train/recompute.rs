//! Activation checkpointing (transformers' `gradient_checkpointing`): the backward pass of a loss on the model's
//! logits that keeps only each decoder layer's input, not its internal activations, and recomputes one layer at a
//! time while back-propagating. Memory for activations falls from O(layers · per-layer activations) to
//! O(layers · [B, T, h] + one layer's activations), at the price of one more forward pass.
//!
//! libtorch's checkpointing is a Python autograd function that tch does not expose, so the chain rule is applied
//! here segment by segment: the layers run without a graph, then, from the head down, each layer is re-run with a
//! graph from its saved input and back-propagated with the gradient arriving at its output (`Σ y·ḡ` has gradient
//! ḡ with respect to `y`, which is what `backward(gradient=ḡ)` does). Dropout masks are re-drawn identically because
//! the model re-seeds its generators per layer from [`ForwardArgs::dropout_seed`]; with a seed, the gradients equal
//! those of the plain `forward` + `backward` (tested bit for bit in f32 on CPU).
use tch::{Kind, Tensor};

use crate::error::{guard, Error, Result};
use crate::model::{Emu3ForCausalLM, ForwardArgs};

/// Runs the model on `input_ids` [B, T] with `args` (no cache, all logits), computes `loss(logits)` and
/// back-propagates it into the model parameters' `.grad()` while storing only the layers' inputs. Returns what
/// `loss` returned beside its scalar loss tensor (the tensor itself is detached after use). Training with dropout
/// needs `args.dropout_seed`, or the recomputed masks would differ from the forward's.
pub fn checkpointed_backward<T>(
    model: &Emu3ForCausalLM,
    input_ids: &Tensor,
    args: &ForwardArgs,
    loss: impl FnOnce(&Tensor) -> Result<(Tensor, T)>,
) -> Result<(Tensor, T)> {
    let mut loss = Some(loss);
    let mut out = None;
    let value = run(model, input_ids, args, &mut |top: &Tensor| {
        let logits = guard("the head", || Ok(model.head(top)))?; // [B, T, V]
        let f = loss.take().expect("the head runs once");
        let (value, o) = f(&logits)?;
        drop(logits);
        guard("the head backward pass", || {
            value.backward();
            Ok(())
        })?;
        out = Some(o);
        Ok(value.detach())
    })?;
    Ok((value, out.expect("set by the head")))
}

/// [`checkpointed_backward`] for a loss that is a sum over sequence positions, with the head run `chunk` positions
/// at a time: `loss(logits, start)` gets the logits [B, n, V] of positions `start .. start+n` of the first `positions`
/// ones and returns that chunk's share of the loss, which is back-propagated at once. The full [B, T, V] logits (and
/// their f32 copies in the loss) never exist, which is most of the memory of a long sequence with Emu3's 184,622-word
/// vocabulary. Returns the summed loss. Equal to the unchunked loss up to the order of the floating-point sums.
pub fn checkpointed_backward_chunked(
    model: &Emu3ForCausalLM,
    input_ids: &Tensor,
    args: &ForwardArgs,
    positions: i64,
    chunk: i64,
    loss: &mut dyn FnMut(&Tensor, i64) -> Result<Tensor>,
) -> Result<Tensor> {
    if chunk <= 0 {
        return Err(Error::input(format!("loss chunk must be ≥ 1 position, got {chunk}")));
    }
    run(model, input_ids, args, &mut |top: &Tensor| {
        let t = top.size()[1];
        if !(1..=t).contains(&positions) {
            return Err(Error::input(format!("{positions} loss positions for a sequence of {t}")));
        }
        let mut total = Tensor::zeros([], (Kind::Float, top.device()));
        let mut start = 0;
        while start < positions {
            let n = chunk.min(positions - start);
            let logits = guard("the head", || Ok(model.head(&top.narrow(1, start, n))))?; // [B, n, V]
            let value = loss(&logits, start)?;
            drop(logits);
            guard("the head backward pass", || {
                value.backward();
                Ok(())
            })?;
            total += value.detach().to_kind(Kind::Float);
            start += n;
        }
        Ok(total)
    })
}

/// The layers without a graph, `head_backward` on the detached top of the stack (it must back-propagate into it),
/// then the layers recomputed from the top down and the embedding. Returns what `head_backward` returned.
fn run(
    model: &Emu3ForCausalLM,
    input_ids: &Tensor,
    args: &ForwardArgs,
    head_backward: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if args.train && model.cfg.attention_dropout > 0.0 && args.dropout_seed.is_none() {
        return Err(Error::input("activation checkpointing with dropout needs ForwardArgs::dropout_seed"));
    }
    if args.logits_to_keep != 0 {
        return Err(Error::input("activation checkpointing computes all logits; logits_to_keep must be 0"));
    }
    let _span = tracing::debug_span!("checkpointed_backward", shape = ?input_ids.size()).entered();
    let (ids, ctx) = model.layer_inputs(input_ids, args)?;
    // The embedding keeps its (cheap) graph: its gradient is the last one applied.
    let embedded = guard("the embedding", || Ok(model.embed(&ids, &ctx)))?; // [B, T, h]
    let n = model.layers.len();
    let mut saved = Vec::with_capacity(n); // n × [B, T, h]
    let top = tch::no_grad(|| {
        let mut x = embedded.detach();
        for i in 0..n {
            let next = model.layer_forward(i, &x, &ctx, None);
            saved.push(x);
            x = next;
        }
        x
    });
    let top = top.detach().set_requires_grad(true);
    let value = head_backward(&top)?;
    let mut grad = top.grad(); // [B, T, h]: d loss / d (output of the last layer)
    if !grad.defined() {
        return Err(Error::input("the loss does not depend on the model's logits"));
    }
    for i in (0..n).rev() {
        let x = saved.pop().expect("one saved input per layer").set_requires_grad(true);
        guard("recomputing a checkpointed layer", || {
            let y = model.layer_forward(i, &x, &ctx, None);
            // Summed in f32: only the gradient of the sum matters, and it is exactly `grad`.
            (y * &grad).sum(Kind::Float).backward();
            Ok(())
        })?;
        grad = x.grad();
    }
    guard("the embedding backward pass", || {
        (embedded * &grad).sum(Kind::Float).backward();
        Ok(())
    })?;
    Ok(value)
}
