"""Label embeddings z_i from the VLP text encoder, with CoOp-style prompt tuning (stage 2).

The prompt is "There is a {label} in the scene". Its tokens are laid out as
`[SOT] prefix... label... suffix... [EOT] pad...`. In "context" mode (the paper) the
prefix and suffix token embeddings become learnable context vectors, initialised from the
words of the template, and the label's own tokens stay as the VLP embeds them. In
"token_table" mode (the released code) a trainable copy of the whole token-embedding
table replaces the VLP's for every position except the label's tokens.
Before any tuning both modes give exactly the VLP's embedding of the plain prompt.
"""

from dataclasses import dataclass

import torch
from torch import nn

from mkt_core.model.vlp import VLP
from mkt_core.runtime.tokenizer import prompt_token_ids


@dataclass
class PromptTokens:
    ids: torch.Tensor  # [L, C] token ids of the full prompts
    label_lengths: torch.Tensor  # [L] number of label tokens kept
    eot_positions: torch.Tensor  # [L] where each prompt's end-of-text token is


class PromptLearner(nn.Module):
    def __init__(self, vlp: VLP, template: str, tuning: str = "context"):
        super().__init__()
        if "{}" not in template:
            raise ValueError(f"prompt template must contain '{{}}': {template!r}")
        prefix, suffix = template.split("{}", 1)
        tokenizer = vlp.tokenizer
        self.template = template
        self.tuning = tuning
        self.prefix_ids = tokenizer.encode(prefix) if prefix.strip() else []
        self.suffix_ids = tokenizer.encode(suffix) if suffix.strip() else []
        self.sot_id = tokenizer.sot_token_id
        self.eot_id = tokenizer.eot_token_id
        self.context_length = vlp.context_length
        self.max_label_tokens = self.context_length - 2 - len(self.prefix_ids) - len(self.suffix_ids)
        if self.max_label_tokens < 1:
            raise ValueError(f"prompt template {template!r} leaves no room for a label in the "
                             f"text context of {self.context_length} tokens")
        table = vlp.clip.token_embedding.weight.detach()
        if tuning == "context":
            self.ctx_prefix = nn.Parameter(table[self.prefix_ids].clone())
            self.ctx_suffix = nn.Parameter(table[self.suffix_ids].clone())
            self.token_table = None
        elif tuning == "token_table":
            self.ctx_prefix = self.ctx_suffix = None
            self.token_table = nn.Embedding.from_pretrained(table.clone(), freeze=False)
        else:
            raise ValueError(f"prompt tuning must be 'context' or 'token_table', got {tuning!r}")

    def tokenize(self, labels: list[str], tokenizer) -> PromptTokens:
        """Token ids of the prompts; a label too long for the context is truncated, with a warning."""
        ids, lengths = prompt_token_ids(labels, tokenizer, self.sot_id, self.prefix_ids, self.suffix_ids,
                                        self.eot_id, self.context_length)
        label_lengths = torch.from_numpy(lengths)
        eot = 1 + len(self.prefix_ids) + label_lengths + len(self.suffix_ids)
        return PromptTokens(torch.from_numpy(ids), label_lengths, eot)

    def forward(self, labels: list[str], vlp: VLP) -> torch.Tensor:
        """Raw (not normalised) label embeddings `[L, D]`: the text tower's projected EOT feature."""
        device = vlp.clip.token_embedding.weight.device
        tokens = self.tokenize(labels, vlp.tokenizer)
        ids = tokens.ids.to(device)
        label_lengths = tokens.label_lengths.to(device)
        embeds = vlp.clip.token_embedding(ids)
        n_prefix, n_suffix = len(self.prefix_ids), len(self.suffix_ids)
        if self.token_table is not None:
            positions = torch.arange(ids.shape[1], device=device)
            start = 1 + n_prefix
            is_label = (positions >= start) & (positions < (start + label_lengths)[:, None])
            embeds = torch.where(is_label[..., None], embeds, self.token_table(ids))
        else:
            count, width = embeds.shape[0], embeds.shape[2]
            if n_prefix:
                prefix = self.ctx_prefix.to(embeds.dtype).expand(count, -1, -1)
                embeds = torch.cat([embeds[:, :1], prefix, embeds[:, 1 + n_prefix:]], dim=1)
            if n_suffix:
                start = 1 + n_prefix + label_lengths
                index = (start[:, None] + torch.arange(n_suffix, device=device))[..., None].expand(-1, -1, width)
                embeds = embeds.scatter(1, index, self.ctx_suffix.to(embeds.dtype).expand(count, -1, -1))
        return vlp.encode_text_embeddings(embeds, tokens.eot_positions.to(device))
