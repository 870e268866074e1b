/* Hugging Face export: which transformers architecture, if any, computes exactly the
 * model a Spec describes, and the names and config.json the checkpoint uses for it. */
#ifndef RELORAC_HF_H
#define RELORAC_HF_H

#include "ir.h"
#include "spec.h"

/* Annotates m (lowered from s; its globals carry the spec's parameter names):
 *  - when LlamaForCausalLM or GPT2LMHeadModel computes exactly the model s describes,
 *    every exported global gets attribute hf_name (its key in transformers' state dict),
 *    and hf_part, hf_axis, hf_transpose when it is a part of a joined or transposed tensor
 *    (rt.h RtExport); the module gets hf.config_json (the config.json text),
 *    hf.config_check (the fields --init-from compares, rt.h RtHfCheck, one
 *    "key<TAB>what<TAB>value[<TAB>absent]" line each) and hf.prefix (the family's
 *    base-model prefix);
 *  - otherwise the globals keep relorac's names and the module gets hf.export_note, one
 *    line "not exported as CLASS: why" (each mismatch, "; " separated), for the driver
 *    to print and the trainer to record. */
void fe_hf_annotate(Arena *a, const Spec *s, IrModule *m);

#endif
