//! Tensor-name prefixes of the two checkpoint layouts, used only by the `load` functions of the VQ modules.
//! transformers: `encoder.down_block.down.{i}`, `decoder.up_block.up.{i}`, `*.middle_block`, attention norms beside
//! the attention (`attn_norms.{j}`, `attn_norm`), linear projections `q_proj/k_proj/v_proj/out_proj`. Original BAAI:
//! `encoder.down.{i}`, `decoder.up.{i}`, `*.mid`, the norm inside the attention module (`attn.{j}.norm`,
//! `attn_1.norm`), 1×1 convolutions `q/k/v/proj_out`. Everything else (`quantize.embedding.weight`,
//! `quant_conv.conv`, temporal stacks, conv_in/out, norm_out) is named alike.
use super::blocks::AttnNames;
use super::VqLayout;

#[derive(Debug, Clone)]
pub struct Names {
    original: bool,
    /// Prepended to every name (`vqmodel.` inside a saved `Emu3ForConditionalGeneration`).
    prefix: String,
}

impl Names {
    pub fn new(layout: VqLayout, prefix: &str) -> Self {
        Names { original: layout == VqLayout::Original, prefix: prefix.to_string() }
    }

    /// A top-level module: `encoder`, `decoder`, `quantize`, `quant_conv`, `post_quant_conv`.
    pub fn root(&self, part: &str) -> String {
        format!("{}{part}", self.prefix)
    }

    /// Resolution level `i` of `encoder` (down path) or `decoder` (up path).
    pub fn level(&self, part: &str, i: usize) -> String {
        let p = self.root(part);
        match (self.original, part) {
            (true, "encoder") => format!("{p}.down.{i}"),
            (true, _) => format!("{p}.up.{i}"),
            (false, "encoder") => format!("{p}.down_block.down.{i}"),
            (false, _) => format!("{p}.up_block.up.{i}"),
        }
    }

    pub fn middle(&self, part: &str) -> String {
        format!("{}.{}", self.root(part), if self.original { "mid" } else { "middle_block" })
    }

    /// (attention module, its norm) of the `j`-th attention of a level.
    pub fn level_attention(&self, level: &str, j: usize) -> (String, String) {
        let attn = format!("{level}.attn.{j}");
        let norm = if self.original { format!("{attn}.norm") } else { format!("{level}.attn_norms.{j}") };
        (attn, norm)
    }

    /// (attention module, its norm) of a middle block.
    pub fn middle_attention(&self, mid: &str) -> (String, String) {
        let attn = format!("{mid}.attn_1");
        let norm = if self.original { format!("{attn}.norm") } else { format!("{mid}.attn_norm") };
        (attn, norm)
    }

    pub fn attn_names(&self) -> AttnNames {
        if self.original {
            AttnNames::Conv1x1
        } else {
            AttnNames::Linear
        }
    }
}
