/* The CPU target (cg_target_cpu): every kernel runs on the host. Loop kernels (K_LOOP)
 * become LLVM functions, GEMMs rt_sgemm_strided calls (OpenBLAS), K_CALL and the fused
 * kernels calls into the runtime. Each loop kernel becomes the rt_parallel_for callback
 *   void <func>.<kernel>(i8 *args, i64 begin, i64 end)
 * which loads its buffer pointers from `args` and calls <func>.<kernel>.body, whose pointer
 * parameters carry `noalias` when no other buffer of the kernel overlaps them; O3 inlines
 * the body and keeps that as scoped alias metadata, so the phase loops vectorise without
 * runtime checks. The body loops over rows [begin, end) and, per row, runs the phase -1
 * instructions, then each phase as a bottom-tested loop over `inner` columns whose per-row
 * reductions are loop-carried phis. Floats are f32; integer instructions are i64. */
#include <math.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "llvm_cg.h"

typedef struct KEmit {
    CgCtx *c;
    const Kernel *k;
    LLVMValueRef *bufptr;  /* program buffer id -> typed pointer parameter, or NULL */
    LLVMValueRef seed, step;
    LLVMValueRef outer_idx[3];
    LLVMValueRef inner;    /* the current phase's column index; NULL in the row preamble */
    int cur_phase;         /* -1 row preamble, k phase loop k, n_phases after the loops */
    LLVMValueRef *val;     /* per instruction */
    LLVMValueRef *red_acc; /* per reduction instruction: the accumulator phi */
} KEmit;

static LLVMTypeRef elem_type(CgCtx *c, IrDType t)
{
    switch (t) {
    case IR_F32: return c->t_f32;
    case IR_BF16: return c->t_i16;
    case IR_I32: return c->t_i32;
    }
    CG_ASSERT(0);
    return NULL;
}

static unsigned elem_size(IrDType t)
{
    return (unsigned)ir_dtype_bytes(t);
}

/* ---- value coercions: instructions are i64 (ints), f32 (floats) or i1 (bools) ---- */

static LLVMValueRef as_f32(KEmit *e, LLVMValueRef v)
{
    CgCtx *c = e->c;
    LLVMTypeRef t = LLVMTypeOf(v);
    if (t == c->t_f32)
        return v;
    if (t == c->t_i1)
        return LLVMBuildUIToFP(c->b, v, c->t_f32, "");
    return LLVMBuildSIToFP(c->b, v, c->t_f32, "");
}

static LLVMValueRef as_i64(KEmit *e, LLVMValueRef v)
{
    CgCtx *c = e->c;
    LLVMTypeRef t = LLVMTypeOf(v);
    if (t == c->t_i64)
        return v;
    if (t == c->t_i1)
        return LLVMBuildZExt(c->b, v, c->t_i64, "");
    return LLVMBuildFPToSI(c->b, v, c->t_i64, "");
}

static LLVMValueRef as_bool(KEmit *e, LLVMValueRef v)
{
    CgCtx *c = e->c;
    LLVMTypeRef t = LLVMTypeOf(v);
    if (t == c->t_i1)
        return v;
    if (t == c->t_i64)
        return LLVMBuildICmp(c->b, LLVMIntNE, v, cg_const_i64(c, 0), "");
    return LLVMBuildFCmp(c->b, LLVMRealUNE, v, cg_const_f32(c, 0.0), "");
}

/* ---- buffer access ---- */

static LLVMValueRef elem_ptr(KEmit *e, int buf, LLVMValueRef idx)
{
    CgCtx *c = e->c;
    CG_ASSERT(buf >= 0 && buf < c->p->n_bufs && e->bufptr[buf]);
    LLVMValueRef i = as_i64(e, idx);
    return LLVMBuildInBoundsGEP2(c->b, elem_type(c, c->p->bufs[buf].dtype), e->bufptr[buf], &i, 1,
                                 "");
}

/* Loads buf[idx]: f32 and bf16 give f32, i32 gives i64. */
static LLVMValueRef load_elem(KEmit *e, int buf, LLVMValueRef idx)
{
    CgCtx *c = e->c;
    IrDType dt = c->p->bufs[buf].dtype;
    LLVMValueRef v = LLVMBuildLoad2(c->b, elem_type(c, dt), elem_ptr(e, buf, idx), "");
    LLVMSetAlignment(v, elem_size(dt));
    switch (dt) {
    case IR_F32: return v;
    case IR_I32: return LLVMBuildSExt(c->b, v, c->t_i64, "");
    case IR_BF16: {
        LLVMValueRef u = LLVMBuildShl(c->b, LLVMBuildZExt(c->b, v, c->t_i32, ""),
                                      cg_const_i32(c, 16), "");
        return LLVMBuildBitCast(c->b, u, c->t_f32, "");
    }
    }
    CG_ASSERT(0);
    return NULL;
}

/* f32 -> bf16 bits, round to nearest even, NaN kept quiet (as rt_f32_to_bf16). */
static LLVMValueRef f32_to_bf16(KEmit *e, LLVMValueRef f)
{
    CgCtx *c = e->c;
    LLVMBuilderRef b = c->b;
    LLVMValueRef u = LLVMBuildBitCast(b, f, c->t_i32, "");
    LLVMValueRef is_nan = LLVMBuildAnd(
        b,
        LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildAnd(b, u, cg_const_i32(c, 0x7F800000), ""),
                      cg_const_i32(c, 0x7F800000), ""),
        LLVMBuildICmp(b, LLVMIntNE, LLVMBuildAnd(b, u, cg_const_i32(c, 0x007FFFFF), ""),
                      cg_const_i32(c, 0), ""),
        "");
    LLVMValueRef hi = LLVMBuildLShr(b, u, cg_const_i32(c, 16), "");
    LLVMValueRef nan = LLVMBuildOr(b, hi, cg_const_i32(c, 0x40), "");
    LLVMValueRef bias = LLVMBuildAdd(b, cg_const_i32(c, 0x7FFF),
                                     LLVMBuildAnd(b, hi, cg_const_i32(c, 1), ""), "");
    LLVMValueRef r = LLVMBuildLShr(b, LLVMBuildAdd(b, u, bias, ""), cg_const_i32(c, 16), "");
    return LLVMBuildTrunc(b, LLVMBuildSelect(b, is_nan, nan, r, ""), c->t_i16, "");
}

static void store_elem(KEmit *e, int buf, LLVMValueRef idx, LLVMValueRef v, bool add)
{
    CgCtx *c = e->c;
    IrDType dt = c->p->bufs[buf].dtype;
    LLVMValueRef ptr = elem_ptr(e, buf, idx);
    LLVMValueRef raw;
    if (add) {
        LLVMValueRef old = load_elem(e, buf, idx);
        v = LLVMTypeOf(old) == c->t_i64 ? LLVMBuildAdd(c->b, old, as_i64(e, v), "")
                                         : LLVMBuildFAdd(c->b, old, as_f32(e, v), "");
    }
    switch (dt) {
    case IR_F32: raw = as_f32(e, v); break;
    case IR_I32: raw = LLVMBuildTrunc(c->b, as_i64(e, v), c->t_i32, ""); break;
    case IR_BF16: raw = f32_to_bf16(e, as_f32(e, v)); break;
    default: CG_ASSERT(0); return;
    }
    LLVMValueRef st = LLVMBuildStore(c->b, raw, ptr);
    LLVMSetAlignment(st, elem_size(dt));
}

/* ---- RNG: uniform inlined (vectorisable), normal through the runtime ---- */

static uint64_t splitmix64_const(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static LLVMValueRef splitmix64(KEmit *e, LLVMValueRef x)
{
    CgCtx *c = e->c;
    LLVMBuilderRef b = c->b;
    LLVMTypeRef t = c->t_i64;
    x = LLVMBuildAdd(b, x, LLVMConstInt(t, 0x9E3779B97F4A7C15ull, 0), "");
    x = LLVMBuildMul(b, LLVMBuildXor(b, x, LLVMBuildLShr(b, x, LLVMConstInt(t, 30, 0), ""), ""),
                     LLVMConstInt(t, 0xBF58476D1CE4E5B9ull, 0), "");
    x = LLVMBuildMul(b, LLVMBuildXor(b, x, LLVMBuildLShr(b, x, LLVMConstInt(t, 27, 0), ""), ""),
                     LLVMConstInt(t, 0x94D049BB133111EBull, 0), "");
    return LLVMBuildXor(b, x, LLVMBuildLShr(b, x, LLVMConstInt(t, 31, 0), ""), "");
}

/* rt_rng_uniform(seed, stream, counter): (u64 >> 40) * 2^-24, exact in f32. */
static LLVMValueRef rng_uniform(KEmit *e, uint64_t stream, LLVMValueRef counter)
{
    CgCtx *c = e->c;
    LLVMValueRef key = splitmix64(
        e, LLVMBuildXor(c->b, e->seed, LLVMConstInt(c->t_i64, splitmix64_const(stream), 0), ""));
    LLVMValueRef u = splitmix64(e, LLVMBuildAdd(c->b, key, as_i64(e, counter), ""));
    LLVMValueRef top = LLVMBuildLShr(c->b, u, LLVMConstInt(c->t_i64, 40, 0), "");
    return LLVMBuildFMul(c->b, LLVMBuildUIToFP(c->b, top, c->t_f32, ""),
                         cg_const_f32(c, 1.0 / 16777216.0), "");
}

static LLVMValueRef call1(KEmit *e, const char *intr, LLVMValueRef x)
{
    LLVMTypeRef fty;
    LLVMValueRef f = cg_intrinsic(e->c, intr, e->c->t_f32, &fty);
    return LLVMBuildCall2(e->c->b, fty, f, &x, 1, "");
}

static LLVMValueRef call2(KEmit *e, const char *intr, LLVMValueRef x, LLVMValueRef y)
{
    LLVMTypeRef fty;
    LLVMValueRef f = cg_intrinsic(e->c, intr, e->c->t_f32, &fty);
    LLVMValueRef args[2] = {x, y};
    return LLVMBuildCall2(e->c->b, fty, f, args, 2, "");
}

/* ---- instructions ---- */

static void emit_instr(KEmit *e, int i);

/* The value of instruction i. A value computed in an earlier phase is the one of that
 * phase's last column (its loop body dominates everything after it), as in the kernel
 * interpreter; a reduction is its row total once its phase is done. A value not yet
 * computed (a forward reference) is computed here. */
static LLVMValueRef val(KEmit *e, int i)
{
    CG_ASSERT(i >= 0 && i < e->k->n_code && !k_instr_is_store(e->k->code[i].op));
    if (!e->val[i]) {
        CG_ASSERT(!k_instr_is_reduce(e->k->code[i].op)); /* a reduction is visible in later phases only */
        emit_instr(e, i);
    }
    return e->val[i];
}

/* Operand j of in, coerced to the type kinstr.def gives it ('?': as computed). */
static LLVMValueRef operand(KEmit *e, const KInstr *in, int j)
{
    const int ids[3] = {in->a, in->b, in->c};
    LLVMValueRef v = val(e, ids[j]);
    switch (k_instr_info[in->op].operands[j]) {
    case 'I': return as_i64(e, v);
    case 'F': return as_f32(e, v);
    case 'B': return as_bool(e, v);
    default: return v;
    }
}

static void emit_instr(KEmit *e, int i)
{
    CgCtx *c = e->c;
    LLVMBuilderRef b = c->b;
    const KInstr *in = &e->k->code[i];
    /* the operands, as the instruction table types them */
    LLVMValueRef x[3] = {NULL, NULL, NULL};
    int n_ops = (int)strlen(k_instr_info[in->op].operands);
    for (int j = 0; j < n_ops; j++)
        x[j] = operand(e, in, j);
    LLVMValueRef v = NULL;
    switch (in->op) {
    case KI_OUTER_INDEX:
        CG_ASSERT(in->axis >= 0 && in->axis < e->k->n_outer);
        v = e->outer_idx[in->axis];
        break;
    case KI_INNER_INDEX: CG_ASSERT(e->inner); v = e->inner; break;
    case KI_ICONST: v = cg_const_i64(c, in->ival); break;
    case KI_IADD: v = LLVMBuildNSWAdd(b, x[0], x[1], ""); break;
    case KI_ISUB: v = LLVMBuildNSWSub(b, x[0], x[1], ""); break;
    case KI_IMUL: v = LLVMBuildNSWMul(b, x[0], x[1], ""); break;
    case KI_IDIV: v = LLVMBuildUDiv(b, x[0], x[1], ""); break; /* operands >= 0 */
    case KI_IREM: v = LLVMBuildURem(b, x[0], x[1], ""); break;
    case KI_IMIN: v = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x[0], x[1], ""), x[0], x[1], ""); break;
    case KI_ILT: v = LLVMBuildICmp(b, LLVMIntSLT, x[0], x[1], ""); break;
    case KI_ILE: v = LLVMBuildICmp(b, LLVMIntSLE, x[0], x[1], ""); break;
    case KI_IEQ: v = LLVMBuildICmp(b, LLVMIntEQ, x[0], x[1], ""); break;
    case KI_LOAD_I: v = as_i64(e, load_elem(e, in->buf, x[0])); break;
    case KI_ITOF: v = x[0]; break;
    case KI_CONST: v = cg_const_f32(c, in->fval); break;
    case KI_SCALAR_ARG:
        CG_ASSERT(in->sarg == KS_STEP);
        v = e->step; /* i64; consumers convert (a float use sees (float)step) */
        break;
    case KI_LOAD: v = as_f32(e, load_elem(e, in->buf, x[0])); break;
    case KI_ADD: v = LLVMBuildFAdd(b, x[0], x[1], ""); break;
    case KI_SUB: v = LLVMBuildFSub(b, x[0], x[1], ""); break;
    case KI_MUL: v = LLVMBuildFMul(b, x[0], x[1], ""); break;
    case KI_DIV: v = LLVMBuildFDiv(b, x[0], x[1], ""); break;
    case KI_MAX: v = call2(e, "llvm.maxnum", x[0], x[1]); break;
    case KI_MIN: v = call2(e, "llvm.minnum", x[0], x[1]); break;
    case KI_NEG: v = LLVMBuildFNeg(b, x[0], ""); break;
    case KI_EXP: v = call1(e, "llvm.exp", x[0]); break;
    case KI_LOG: v = call1(e, "llvm.log", x[0]); break;
    case KI_SQRT: v = call1(e, "llvm.sqrt", x[0]); break;
    case KI_COS: v = call1(e, "llvm.cos", x[0]); break;
    case KI_SIN: v = call1(e, "llvm.sin", x[0]); break;
    case KI_ABS: v = call1(e, "llvm.fabs", x[0]); break;
    case KI_TANH: v = LLVMBuildCall2(b, c->t_tanhf, c->f_tanhf, &x[0], 1, ""); break;
    case KI_FLT: v = LLVMBuildFCmp(b, LLVMRealOLT, x[0], x[1], ""); break;
    case KI_FLE: v = LLVMBuildFCmp(b, LLVMRealOLE, x[0], x[1], ""); break;
    case KI_SELECT: {
        /* a ? b : c (operand order of the kernel interpreter); both float, or both int */
        LLVMValueRef y = x[1], z = x[2];
        if (LLVMTypeOf(y) == c->t_f32 || LLVMTypeOf(z) == c->t_f32) {
            y = as_f32(e, y);
            z = as_f32(e, z);
        } else {
            y = as_i64(e, y);
            z = as_i64(e, z);
        }
        v = LLVMBuildSelect(b, x[0], y, z, "");
        break;
    }
    case KI_RNG_UNIFORM: v = rng_uniform(e, (uint64_t)in->ival, x[0]); break;
    case KI_RNG_NORMAL: {
        LLVMValueRef args[3] = {e->seed, LLVMConstInt(c->t_i64, (uint64_t)in->ival, 0), x[0]};
        v = LLVMBuildCall2(b, c->t_rng_normal, c->f_rng_normal, args, 3, "");
        break;
    }
    case KI_REDUCE_SUM:
        CG_ASSERT(e->red_acc[i] && in->phase == e->cur_phase);
        v = LLVMBuildFAdd(b, e->red_acc[i], x[0], "");
        break;
    case KI_REDUCE_MAX:
        CG_ASSERT(e->red_acc[i] && in->phase == e->cur_phase);
        v = call2(e, "llvm.maxnum", e->red_acc[i], x[0]);
        break;
    case KI_STORE:
    case KI_STORE_ADD:
        store_elem(e, in->buf, x[0], x[1], in->op == KI_STORE_ADD);
        return;
    case KI_COUNT: CG_ASSERT(0);
    }
    CG_ASSERT(v);
    e->val[i] = v;
}

/* !llvm.loop !{self, !{"llvm.loop.vectorize.enable", i1 true}}: lets the vectoriser reorder
 * this loop's reductions (the only fast-math the kernels use; see docs/codegen.md). */
static void mark_loop_reorderable(CgCtx *c, LLVMValueRef br)
{
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->llc, NULL, 0);
    const char *key = "llvm.loop.vectorize.enable";
    LLVMMetadataRef opt[2] = {LLVMMDStringInContext2(c->llc, key, strlen(key)),
                              LLVMValueAsMetadata(LLVMConstInt(c->t_i1, 1, 0))};
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(c->llc, opt, 2)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(c->llc, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->llc, "llvm.loop", 9),
                    LLVMMetadataAsValue(c->llc, loop));
}

/* Does instruction i depend on the row (an outer index)? memo: 0 unknown, 1 no, 2 yes. */
static bool depends_on_row(const Kernel *k, int i, char *memo)
{
    if (i < 0)
        return false;
    if (memo[i])
        return memo[i] == 2;
    const KInstr *in = &k->code[i];
    bool dep = in->op == KI_OUTER_INDEX;
    if (!dep && in->op != KI_REDUCE_SUM && in->op != KI_REDUCE_MAX)
        dep = depends_on_row(k, in->a, memo) || depends_on_row(k, in->b, memo) ||
              depends_on_row(k, in->c, memo);
    else if (!dep) /* a reduction's value is per row whatever it sums */
        dep = true;
    memo[i] = dep ? 2 : 1;
    return dep;
}

/* The body: loops over rows [begin, end) and the phases. */
static void emit_body(KEmit *e, LLVMValueRef fn, LLVMValueRef begin, LLVMValueRef end)
{
    CgCtx *c = e->c;
    const Kernel *k = e->k;
    LLVMBuilderRef b = c->b;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->llc, fn, "entry");
    LLVMBasicBlockRef row_bb = LLVMAppendBasicBlockInContext(c->llc, fn, "row");
    LLVMBasicBlockRef exit_bb = LLVMAppendBasicBlockInContext(c->llc, fn, "exit");
    LLVMPositionBuilderAtEnd(b, entry);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, begin, end, ""), row_bb, exit_bb);

    LLVMPositionBuilderAtEnd(b, row_bb);
    LLVMValueRef r = LLVMBuildPhi(b, c->t_i64, "r");
    /* row -> outer indices, row-major: r = (i0 * outer1 + i1) * outer2 + i2 */
    LLVMValueRef rem = r;
    for (int ax = k->n_outer - 1; ax >= 1; ax--) {
        LLVMValueRef dim = cg_const_i64(c, k->outer[ax]);
        e->outer_idx[ax] = LLVMBuildURem(b, rem, dim, "");
        rem = LLVMBuildUDiv(b, rem, dim, "");
    }
    if (k->n_outer >= 1)
        e->outer_idx[0] = rem;

    e->cur_phase = -1;
    e->inner = NULL;
    for (int i = 0; i < k->n_code; i++)
        if (k->code[i].phase == -1 && !e->val[i])
            emit_instr(e, i);

    for (int ph = 0; ph < k->n_phases; ph++) {
        LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
        LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c->llc, fn, "phase");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->llc, fn, "phase.done");
        LLVMBuildBr(b, loop);
        LLVMPositionBuilderAtEnd(b, loop);
        LLVMValueRef j = LLVMBuildPhi(b, c->t_i64, "j");
        bool has_red = false;
        for (int i = 0; i < k->n_code; i++)
            if (k->code[i].phase == ph && k_instr_is_reduce(k->code[i].op)) {
                e->red_acc[i] = LLVMBuildPhi(b, c->t_f32, "acc");
                has_red = true;
            }
        e->cur_phase = ph;
        e->inner = j;
        for (int i = 0; i < k->n_code; i++)
            if (k->code[i].phase == ph && !e->val[i])
                emit_instr(e, i);
        LLVMValueRef j1 = LLVMBuildNUWAdd(b, j, cg_const_i64(c, 1), "");
        LLVMValueRef more = LLVMBuildICmp(b, LLVMIntSLT, j1, cg_const_i64(c, k->inner), "");
        LLVMBasicBlockRef last = LLVMGetInsertBlock(b);
        LLVMValueRef br = LLVMBuildCondBr(b, more, loop, done);
        if (has_red)
            mark_loop_reorderable(c, br);
        LLVMValueRef zero = cg_const_i64(c, 0);
        LLVMAddIncoming(j, &zero, &pre, 1);
        LLVMAddIncoming(j, &j1, &last, 1);
        for (int i = 0; i < k->n_code; i++)
            if (k->code[i].phase == ph && k_instr_is_reduce(k->code[i].op)) {
                LLVMValueRef init = cg_const_f32(c, k->code[i].op == KI_REDUCE_SUM ? 0.0 : -INFINITY);
                LLVMAddIncoming(e->red_acc[i], &init, &pre, 1);
                LLVMAddIncoming(e->red_acc[i], &e->val[i], &last, 1);
            }
        LLVMPositionBuilderAtEnd(b, done);
    }

    /* phase n_phases: once per row after the loops */
    e->cur_phase = k->n_phases;
    e->inner = NULL;
    for (int i = 0; i < k->n_code; i++)
        if (k->code[i].phase == k->n_phases && !e->val[i])
            emit_instr(e, i);

    LLVMValueRef r1 = LLVMBuildNUWAdd(b, r, cg_const_i64(c, 1), "");
    LLVMBasicBlockRef last = LLVMGetInsertBlock(b);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, r1, end, ""), row_bb, exit_bb);
    LLVMAddIncoming(r, &begin, &entry, 1);
    LLVMAddIncoming(r, &r1, &last, 1);
    LLVMPositionBuilderAtEnd(b, exit_bb);
    LLVMBuildRetVoid(b);
}

static bool overlaps(const CgBufLoc *x, const CgBufLoc *y)
{
    return x->pool == y->pool && x->offset < y->offset + y->bytes &&
           y->offset < x->offset + x->bytes;
}

/* Defines the rt_parallel_for callback of a K_LOOP kernel and returns it. args_ty gets the
 * struct its `args` points to: {buffer pointers (i8*) in the order of bufs, i64 seed, i64
 * step}; bufs and n_bufs the buffer ids (arena). serial is set when rows must not run in
 * parallel (a store whose address ignores the row). */
static LLVMValueRef kernel_emit(CgCtx *c, const KFunc *f, const Kernel *k, LLVMTypeRef *args_ty,
                                int **bufs_out, int *n_bufs_out, bool *serial)
{
    CG_ASSERT(k->kind == K_LOOP && k->n_phases >= 1 && k->inner >= 1 && k->n_outer >= 0 &&
              k->n_outer <= 3);
    const KProgram *p = c->p;
    LLVMBuilderRef b = c->b;

    /* the kernel's buffers, in order of first use */
    int *bufs = ARENA_ARRAY(c->a, int, k->n_code + 1), nb = 0;
    char *memo = ARENA_ARRAY(c->a, char, k->n_code + 1);
    *serial = false;
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (!k_instr_has_buf(in->op))
            continue;
        CG_ASSERT(in->buf >= 0 && in->buf < p->n_bufs);
        int j = 0;
        while (j < nb && bufs[j] != in->buf)
            j++;
        if (j == nb)
            bufs[nb++] = in->buf;
        if (k_instr_is_store(in->op) && cg_kernel_rows(k) > 1 && !depends_on_row(k, in->a, memo))
            *serial = true;
    }

    const char *name = arena_sprintf(c->a, "%s.%s", f->name, k->name ? k->name : arena_sprintf(c->a, "k%d", k->id));
    /* args: {i8 *buf[nb], i64 seed, i64 step} */
    LLVMTypeRef *fields = ARENA_ARRAY(c->a, LLVMTypeRef, nb + 2);
    for (int i = 0; i < nb; i++)
        fields[i] = c->t_p8;
    fields[nb] = c->t_i64;
    fields[nb + 1] = c->t_i64;
    LLVMTypeRef st = LLVMStructTypeInContext(c->llc, fields, (unsigned)nb + 2, 0);

    /* body(T *noalias buf..., i64 seed, i64 step, i64 begin, i64 end) */
    LLVMTypeRef *params = ARENA_ARRAY(c->a, LLVMTypeRef, nb + 4);
    for (int i = 0; i < nb; i++)
        params[i] = LLVMPointerType(elem_type(c, p->bufs[bufs[i]].dtype), 0);
    for (int i = 0; i < 4; i++)
        params[nb + i] = c->t_i64;
    LLVMTypeRef body_ty = LLVMFunctionType(c->t_void, params, (unsigned)nb + 4, 0);
    LLVMValueRef body = LLVMAddFunction(c->mod, arena_sprintf(c->a, "%s.body", name), body_ty);
    LLVMSetLinkage(body, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (int i = 0; i < nb; i++) {
        bool alone = true;
        for (int j = 0; j < nb; j++)
            if (j != i && overlaps(&c->loc[bufs[i]], &c->loc[bufs[j]]))
                alone = false;
        if (alone)
            LLVMAddAttributeAtIndex(body, (unsigned)i + 1,
                                    LLVMCreateEnumAttribute(c->llc, noalias, 0));
    }

    KEmit e;
    memset(&e, 0, sizeof e);
    e.c = c;
    e.k = k;
    e.bufptr = ARENA_ARRAY(c->a, LLVMValueRef, p->n_bufs + 1);
    for (int i = 0; i < nb; i++)
        e.bufptr[bufs[i]] = LLVMGetParam(body, (unsigned)i);
    e.seed = LLVMGetParam(body, (unsigned)nb);
    e.step = LLVMGetParam(body, (unsigned)nb + 1);
    e.val = ARENA_ARRAY(c->a, LLVMValueRef, k->n_code + 1);
    e.red_acc = ARENA_ARRAY(c->a, LLVMValueRef, k->n_code + 1);
    emit_body(&e, body, LLVMGetParam(body, (unsigned)nb + 2), LLVMGetParam(body, (unsigned)nb + 3));

    /* the rt_parallel_for callback */
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, c->t_kernel_fn);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->llc, fn, "entry"));
    LLVMValueRef args = LLVMBuildBitCast(b, LLVMGetParam(fn, 0), LLVMPointerType(st, 0), "args");
    LLVMValueRef *call_args = ARENA_ARRAY(c->a, LLVMValueRef, nb + 4);
    for (int i = 0; i < nb + 2; i++) {
        LLVMValueRef fp = LLVMBuildStructGEP2(b, st, args, (unsigned)i, "");
        LLVMValueRef v = LLVMBuildLoad2(b, fields[i], fp, "");
        call_args[i] = i < nb ? LLVMBuildBitCast(b, v, params[i], "") : v;
    }
    call_args[nb + 2] = LLVMGetParam(fn, 1);
    call_args[nb + 3] = LLVMGetParam(fn, 2);
    LLVMBuildCall2(b, body_ty, body, call_args, (unsigned)nb + 4, "");
    LLVMBuildRetVoid(b);

    *args_ty = st;
    *bufs_out = bufs;
    *n_bufs_out = nb;
    return fn;
}

/* ---- fused kernels: calls into runtime/rt_fused.c ---- */

/* (T *) to buffer buf, or a null pointer for -1; false after a diagnostic when the buffer
 * does not exist or is not of dtype dt. */
static bool fused_buf(CgCtx *c, const Kernel *k, const CgFn *h, int buf, IrDType dt, const char *what,
                      LLVMValueRef *out)
{
    LLVMTypeRef pt = dt == IR_I32 ? c->t_pi32 : c->t_pf32;
    if (buf < 0) {
        *out = LLVMConstNull(pt);
        return true;
    }
    if (buf >= c->p->n_bufs || c->p->bufs[buf].dtype != dt) {
        diag_error(c->d, k->loc, "kernel %s: the LLVM backend needs an %s %s buffer", k->name ? k->name : "?",
                   ir_dtype_name(dt), what);
        return false;
    }
    *out = LLVMBuildBitCast(c->b, cg_buf_ptr(c, h, buf), pt, what);
    return true;
}

static void fused_emit(CgCtx *c, const CgFn *fn, const Kernel *k)
{
    LLVMValueRef ctx = fn->ctx;
    if (k->kind == K_ATTENTION) {
        const KAttention *a = &k->attn;
        const int ids[9] = {a->q, a->k, a->v, a->y, a->lse, a->dy, a->dq, a->dk, a->dv};
        static const char *const what[9] = {"q", "k", "v", "y", "lse", "dy", "dq", "dk", "dv"};
        LLVMValueRef ptr[9];
        for (int i = 0; i < 9; i++)
            if (!fused_buf(c, k, fn, ids[i], IR_F32, what[i], &ptr[i]))
                return;
        LLVMValueRef args[19] = {ctx,
                                 cg_const_i64(c, a->batch),
                                 cg_const_i64(c, a->heads),
                                 cg_const_i64(c, a->kv_heads),
                                 cg_const_i64(c, a->seq),
                                 cg_const_i64(c, a->head_dim),
                                 cg_const_i64(c, a->tile_q),
                                 cg_const_i64(c, a->tile_k),
                                 cg_const_i32(c, a->causal),
                                 cg_const_f32(c, a->scale),
                                 ptr[0], ptr[1], ptr[2]};
        if (a->backward) {
            for (int i = 3; i < 9; i++) /* y, lse, dy, dq, dk, dv */
                args[10 + i] = ptr[i];
            LLVMBuildCall2(c->b, c->t_attn_bwd, c->f_attn_bwd, args, 19, "");
        } else {
            args[13] = ptr[3];
            args[14] = ptr[4];
            LLVMBuildCall2(c->b, c->t_attn_fwd, c->f_attn_fwd, args, 15, "");
        }
        return;
    }
    CG_ASSERT(k->kind == K_HEAD_LOSS);
    const KHeadLoss *h = &k->head;
    LLVMValueRef x, w, t, loss, dx, dw, dloss, work;
    if (!fused_buf(c, k, fn, h->x, IR_F32, "x", &x) || !fused_buf(c, k, fn, h->w, IR_F32, "w", &w) ||
        !fused_buf(c, k, fn, h->targets, IR_I32, "targets", &t) ||
        !fused_buf(c, k, fn, h->loss, IR_F32, "loss", &loss) || !fused_buf(c, k, fn, h->dx, IR_F32, "dx", &dx) ||
        !fused_buf(c, k, fn, h->dw, IR_F32, "dw", &dw) ||
        !fused_buf(c, k, fn, h->dloss, IR_F32, "dloss", &dloss) ||
        !fused_buf(c, k, fn, h->work, IR_F32, "work", &work))
        return;
    LLVMValueRef args[14] = {ctx,  cg_const_i64(c, h->rows), cg_const_i64(c, h->dim), cg_const_i64(c, h->vocab),
                             cg_const_i64(c, h->chunk), x, w, t, loss, dx, dw, dloss, cg_const_f32(c, h->grad_scale),
                             work};
    LLVMBuildCall2(c->b, c->t_head_loss, c->f_head_loss, args, 14, "");
}

/* ---- kernels in host functions ---- */

static bool check_buf(CgCtx *c, const Kernel *k, int buf, const char *what, bool f32)
{
    if (buf < 0 || buf >= c->p->n_bufs) {
        diag_error(c->d, k->loc, "kernel %s: %s buffer %d does not exist", cg_kernel_name(k), what, buf);
        return false;
    }
    if (f32 && c->p->bufs[buf].dtype != IR_F32) {
        diag_error(c->d, k->loc, "kernel %s: the LLVM backend needs an f32 %s buffer (got %s)", cg_kernel_name(k),
                   what, ir_dtype_name(c->p->bufs[buf].dtype));
        return false;
    }
    return true;
}

static void emit_loop_call(CgCtx *c, const CgFn *h, const KFunc *f, const Kernel *k)
{
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (k_instr_has_buf(in->op) && !check_buf(c, k, in->buf, "loop", false))
            return;
    }
    LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
    LLVMTypeRef st;
    int *bufs, nb;
    bool serial;
    LLVMValueRef fn = kernel_emit(c, f, k, &st, &bufs, &nb, &serial);
    LLVMPositionBuilderAtEnd(c->b, here);

    LLVMValueRef args = LLVMBuildAlloca(c->b, st, "args");
    for (int i = 0; i < nb; i++)
        LLVMBuildStore(c->b, cg_buf_ptr(c, h, bufs[i]), LLVMBuildStructGEP2(c->b, st, args, (unsigned)i, ""));
    LLVMBuildStore(c->b, h->seed, LLVMBuildStructGEP2(c->b, st, args, (unsigned)nb, ""));
    LLVMBuildStore(c->b, h->step, LLVMBuildStructGEP2(c->b, st, args, (unsigned)nb + 1, ""));
    LLVMValueRef argp = LLVMBuildBitCast(c->b, args, c->t_p8, "");
    int64_t rows = cg_kernel_rows(k);
    int64_t below = c->opt->serial_below > 0 ? c->opt->serial_below : 16384;
    if (serial || rows < 2 || rows * k->inner * k->n_phases < below) {
        LLVMValueRef a[3] = {argp, cg_const_i64(c, 0), cg_const_i64(c, rows)};
        LLVMBuildCall2(c->b, c->t_kernel_fn, fn, a, 3, "");
    } else {
        LLVMValueRef a[4] = {h->ctx, cg_const_i64(c, rows), fn, argp};
        LLVMBuildCall2(c->b, c->t_parallel_for, c->f_parallel_for, a, 4, "");
    }
}

/* f32 *: buffer buf + off elements */
static LLVMValueRef f32_at(CgCtx *c, const CgFn *h, int buf, int64_t off)
{
    LLVMValueRef o = cg_const_i64(c, off);
    return LLVMBuildInBoundsGEP2(c->b, c->t_f32, cg_typed(c, cg_buf_ptr(c, h, buf), c->t_f32), &o, 1, "");
}

/* i16 * (bf16 elements): buffer buf + off elements */
static LLVMValueRef bf16_at(CgCtx *c, const CgFn *h, int buf, int64_t off)
{
    LLVMValueRef o = cg_const_i64(c, off);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i16, cg_typed(c, cg_buf_ptr(c, h, buf), c->t_i16), &o, 1, "");
}

/* A GEMM with a bf16 operand (the precision policy's copies, ir/kprecision.c): rt_sbgemm_strided,
 * bf16 products accumulated in f32; an f32 operand beside it is rounded as it is packed. */
static void emit_sbgemm(CgCtx *c, const CgFn *h, const Kernel *k)
{
    const KGemm *g = &k->gemm;
    bool a16 = c->p->bufs[g->a].dtype == IR_BF16, b16 = c->p->bufs[g->b].dtype == IR_BF16;
    LLVMValueRef a[20] = {h->ctx,
                          cg_const_i32(c, g->trans_a),
                          cg_const_i32(c, g->trans_b),
                          cg_const_i64(c, g->m),
                          cg_const_i64(c, g->n),
                          cg_const_i64(c, g->k),
                          cg_const_f32(c, g->alpha),
                          LLVMBuildBitCast(c->b, a16 ? bf16_at(c, h, g->a, g->off_a) : f32_at(c, h, g->a, g->off_a), c->t_p8, ""),
                          cg_const_i32(c, a16),
                          cg_const_i64(c, g->lda),
                          cg_const_i64(c, g->stride_a),
                          LLVMBuildBitCast(c->b, b16 ? bf16_at(c, h, g->b, g->off_b) : f32_at(c, h, g->b, g->off_b), c->t_p8, ""),
                          cg_const_i32(c, b16),
                          cg_const_i64(c, g->ldb),
                          cg_const_i64(c, g->stride_b),
                          cg_const_f32(c, g->beta),
                          f32_at(c, h, g->c, g->off_c),
                          cg_const_i64(c, g->ldc),
                          cg_const_i64(c, g->stride_c),
                          cg_const_i64(c, g->batch > 0 ? g->batch : 1)};
    LLVMBuildCall2(c->b, c->t_sbgemm, c->f_sbgemm, a, 20, "");
}

static bool is_gemm_operand(CgCtx *c, const Kernel *k, int buf, const char *what)
{
    if (!check_buf(c, k, buf, what, false))
        return false;
    IrDType t = c->p->bufs[buf].dtype;
    if (t != IR_F32 && t != IR_BF16) {
        diag_error(c->d, k->loc, "kernel %s: a GEMM operand must be f32 or bf16 (%s is %s)", cg_kernel_name(k), what,
                   ir_dtype_name(t));
        return false;
    }
    return true;
}

static void emit_gemm(CgCtx *c, const CgFn *h, const Kernel *k)
{
    const KGemm *g = &k->gemm;
    if (!is_gemm_operand(c, k, g->a, "A") || !is_gemm_operand(c, k, g->b, "B") || !check_buf(c, k, g->c, "C", true))
        return;
    if (c->p->bufs[g->a].dtype == IR_BF16 || c->p->bufs[g->b].dtype == IR_BF16) {
        emit_sbgemm(c, h, k);
        return;
    }
    LLVMValueRef a[18] = {h->ctx,
                          cg_const_i32(c, g->trans_a),
                          cg_const_i32(c, g->trans_b),
                          cg_const_i64(c, g->m),
                          cg_const_i64(c, g->n),
                          cg_const_i64(c, g->k),
                          cg_const_f32(c, g->alpha),
                          f32_at(c, h, g->a, g->off_a),
                          cg_const_i64(c, g->lda),
                          cg_const_i64(c, g->stride_a),
                          f32_at(c, h, g->b, g->off_b),
                          cg_const_i64(c, g->ldb),
                          cg_const_i64(c, g->stride_b),
                          cg_const_f32(c, g->beta),
                          f32_at(c, h, g->c, g->off_c),
                          cg_const_i64(c, g->ldc),
                          cg_const_i64(c, g->stride_c),
                          cg_const_i64(c, g->batch > 0 ? g->batch : 1)};
    LLVMBuildCall2(c->b, c->t_sgemm, c->f_sgemm, a, 18, "");
}

/* Whether a GEMM's operands are all f32 (rt_sgemm_pair's; a bf16 operand goes to
 * rt_sbgemm_strided alone). */
static bool gemm_all_f32(const CgCtx *c, const Kernel *k)
{
    const KGemm *g = &k->gemm;
    return g->a >= 0 && g->b >= 0 && c->p->bufs[g->a].dtype == IR_F32 && c->p->bufs[g->b].dtype == IR_F32 &&
           c->p->bufs[g->c].dtype == IR_F32;
}

/* Whether GEMM y, run right after GEMM x, joins it in one rt_sgemm_pair call, and how:
 * *cat_k 0 when they share A and write adjacent column ranges of one C (kernelize's
 * split_concat_gemm, trans_b: a [W; A]^T), 1 when y adds a second inner range into x's C
 * with beta 1 (its non-trans case: a [W; A] with a = [dy | dz]). y must not read x's C. */
static bool gemm_pair(const CgCtx *c, const Kernel *x, const Kernel *y, int *cat_k)
{
    if (!x || !y || x->kind != K_GEMM || y->kind != K_GEMM || !gemm_all_f32(c, x) || !gemm_all_f32(c, y))
        return false;
    const KGemm *p = &x->gemm, *q = &y->gemm;
    if (p->trans_a || q->trans_a || p->trans_b != q->trans_b || p->batch > 1 || q->batch > 1 ||
        p->m != q->m || p->alpha != q->alpha || p->c != q->c || p->ldc != q->ldc ||
        q->a == p->c || q->b == p->c || p->a < 0 || q->a < 0)
        return false;
    if (p->a == q->a && p->off_a == q->off_a && p->lda == q->lda && p->k == q->k &&
        p->beta == q->beta && q->off_c == p->off_c + p->n) {
        *cat_k = 0;
        return true;
    }
    if (p->n == q->n && p->off_c == q->off_c && q->beta == 1.0) {
        *cat_k = 1;
        return true;
    }
    return false;
}

/* Whether GEMM kernel i of f is the second of a pair: pairs are taken greedily from the
 * first GEMM of a run of pairable ones, so it is when an odd number of links precede it. */
static bool paired_with_prev(const CgCtx *c, const KFunc *f, int i)
{
    int links = 0, cat_k;
    while (i > 0 && gemm_pair(c, f->kernels[i - 1], f->kernels[i], &cat_k)) {
        links++;
        i--;
    }
    return links % 2 == 1;
}

static void emit_gemm_pair(CgCtx *c, const CgFn *h, const Kernel *x, const Kernel *y, int cat_k)
{
    const KGemm *p = &x->gemm, *q = &y->gemm;
    if (!check_buf(c, x, p->a, "A", true) || !check_buf(c, x, p->b, "B", true) ||
        !check_buf(c, x, p->c, "C", true) || !check_buf(c, y, q->a, "A", true) ||
        !check_buf(c, y, q->b, "B", true))
        return;
    LLVMValueRef a[19] = {h->ctx,
                          cg_const_i32(c, cat_k),
                          cg_const_i32(c, p->trans_b),
                          cg_const_i64(c, p->m),
                          cg_const_i64(c, p->n),
                          cg_const_i64(c, p->k),
                          cg_const_i64(c, cat_k ? q->k : q->n),
                          cg_const_f32(c, p->alpha),
                          f32_at(c, h, p->a, p->off_a),
                          cg_const_i64(c, p->lda),
                          f32_at(c, h, q->a, q->off_a),
                          cg_const_i64(c, q->lda),
                          f32_at(c, h, p->b, p->off_b),
                          cg_const_i64(c, p->ldb),
                          f32_at(c, h, q->b, q->off_b),
                          cg_const_i64(c, q->ldb),
                          cg_const_f32(c, p->beta),
                          f32_at(c, h, p->c, p->off_c),
                          cg_const_i64(c, p->ldc)};
    LLVMBuildCall2(c->b, c->t_sgemm_pair, c->f_sgemm_pair, a, 19, "");
}

/* K_CALL: call_bufs = {x, step i32[], fraction f32[]}; both scalars are read from their
 * buffers, as the kernel interpreter does. */
static void emit_call(CgCtx *c, const CgFn *h, const Kernel *k)
{
    if (k->n_call_bufs < 3 || !check_buf(c, k, k->call_bufs[0], "call", true) ||
        !check_buf(c, k, k->call_bufs[1], "step", false) || !check_buf(c, k, k->call_bufs[2], "fraction", true))
        return;
    if (c->p->bufs[k->call_bufs[1]].dtype != IR_I32) {
        diag_error(c->d, k->loc, "kernel %s: the step buffer must be i32", cg_kernel_name(k));
        return;
    }
    LLVMValueRef sp = cg_typed(c, cg_buf_ptr(c, h, k->call_bufs[1]), c->t_i32);
    LLVMValueRef step = LLVMBuildSExt(c->b, LLVMBuildLoad2(c->b, c->t_i32, sp, "step"), c->t_i64, "");
    LLVMValueRef fp = cg_typed(c, cg_buf_ptr(c, h, k->call_bufs[2]), c->t_f32);
    LLVMValueRef frac = LLVMBuildFPExt(c->b, LLVMBuildLoad2(c->b, c->t_f32, fp, "fraction"), c->t_f64, "");
    const KBuf *kb = &c->p->bufs[k->call_bufs[0]];
    LLVMValueRef x = cg_typed(c, cg_buf_ptr(c, h, k->call_bufs[0]), c->t_f32);
    switch (k->call) {
    case KC_PRUNE_MAGNITUDE: {
        LLVMValueRef a[3] = {x, cg_const_i64(c, kb->numel), frac};
        LLVMBuildCall2(c->b, c->t_prune_mag, c->f_prune_mag, a, 3, "");
        return;
    }
    case KC_PRUNE_RANDOM: {
        if (!ir_attrs_get(&k->call_attrs, "stream")) {
            diag_error(c->d, k->loc, "kernel %s: missing integer attribute 'stream'", cg_kernel_name(k));
            return;
        }
        int64_t stream = ir_attrs_int(&k->call_attrs, "stream", 0);
        LLVMValueRef a[6] = {x, cg_const_i64(c, kb->numel), frac, h->seed, cg_const_i64(c, stream), step};
        LLVMBuildCall2(c->b, c->t_prune_rand, c->f_prune_rand, a, 6, "");
        return;
    }
    case KC_COUNT: break;
    }
    diag_error(c->d, k->loc, "kernel %s: unknown runtime call %d", cg_kernel_name(k), (int)k->call);
}

/* ---- the target ---- */

/* The runtime routines the CPU host code calls (runtime/rt.h, rt_ops.h, rt_fused.h). */
static bool cpu_prepare(CgCtx *c)
{
    LLVMTypeRef pf[4] = {c->t_pctx, c->t_i64, LLVMPointerType(c->t_kernel_fn, 0), c->t_p8};
    c->f_parallel_for = cg_declare(c, "rt_parallel_for", c->t_void, pf, 4, &c->t_parallel_for);
    LLVMTypeRef sg[18] = {c->t_pctx, c->t_i32,  c->t_i32, c->t_i64,  c->t_i64, c->t_i64,
                          c->t_f32,  c->t_pf32, c->t_i64, c->t_i64,  c->t_pf32, c->t_i64,
                          c->t_i64,  c->t_f32,  c->t_pf32, c->t_i64, c->t_i64, c->t_i64};
    c->f_sgemm = cg_declare(c, "rt_sgemm_strided", c->t_void, sg, 18, &c->t_sgemm);
    LLVMTypeRef sp[19] = {c->t_pctx, c->t_i32, c->t_i32,  c->t_i64, c->t_i64,  c->t_i64, c->t_i64,
                          c->t_f32,  c->t_pf32, c->t_i64, c->t_pf32, c->t_i64, c->t_pf32, c->t_i64,
                          c->t_pf32, c->t_i64, c->t_f32,  c->t_pf32, c->t_i64};
    c->f_sgemm_pair = cg_declare(c, "rt_sgemm_pair", c->t_void, sp, 19, &c->t_sgemm_pair);
    LLVMTypeRef sb[20] = {c->t_pctx, c->t_i32, c->t_i32,  c->t_i64, c->t_i64,  c->t_i64, c->t_f32,
                          c->t_p8,   c->t_i32, c->t_i64,  c->t_i64, c->t_p8,   c->t_i32, c->t_i64,
                          c->t_i64,  c->t_f32, c->t_pf32, c->t_i64, c->t_i64,  c->t_i64};
    c->f_sbgemm = cg_declare(c, "rt_sbgemm_strided", c->t_void, sb, 20, &c->t_sbgemm);
    LLVMTypeRef rn[3] = {c->t_i64, c->t_i64, c->t_i64};
    c->f_rng_normal = cg_declare(c, "rt_rng_normal", c->t_f32, rn, 3, &c->t_rng_normal);
    LLVMTypeRef pm[3] = {c->t_pf32, c->t_i64, c->t_f64};
    c->f_prune_mag = cg_declare(c, "rt_prune_magnitude", c->t_i64, pm, 3, &c->t_prune_mag);
    LLVMTypeRef pr[6] = {c->t_pf32, c->t_i64, c->t_f64, c->t_i64, c->t_i64, c->t_i64};
    c->f_prune_rand = cg_declare(c, "rt_prune_random", c->t_i64, pr, 6, &c->t_prune_rand);
    c->f_tanhf = cg_declare(c, "tanhf", c->t_f32, &c->t_f32, 1, &c->t_tanhf);
    LLVMTypeRef at[19] = {c->t_pctx, c->t_i64,  c->t_i64,  c->t_i64,  c->t_i64,  c->t_i64,  c->t_i64,
                          c->t_i64,  c->t_i32,  c->t_f32,  c->t_pf32, c->t_pf32, c->t_pf32, c->t_pf32,
                          c->t_pf32, c->t_pf32, c->t_pf32, c->t_pf32, c->t_pf32};
    c->f_attn_fwd = cg_declare(c, "rt_attention_forward", c->t_void, at, 15, &c->t_attn_fwd);
    c->f_attn_bwd = cg_declare(c, "rt_attention_backward", c->t_void, at, 19, &c->t_attn_bwd);
    LLVMTypeRef hl[14] = {c->t_pctx, c->t_i64,  c->t_i64,  c->t_i64,  c->t_i64,  c->t_pf32, c->t_pf32,
                          c->t_pi32, c->t_pf32, c->t_pf32, c->t_pf32, c->t_pf32, c->t_f32,  c->t_pf32};
    c->f_head_loss = cg_declare(c, "rt_head_loss", c->t_void, hl, 14, &c->t_head_loss);
    return true;
}

/* @step, read once at the function's entry (0 when the program has none). */
static void cpu_begin(CgCtx *c, CgFn *h)
{
    h->step = cg_const_i64(c, 0);
    if (h->step_buf >= 0)
        h->step = LLVMBuildSExt(
            c->b, LLVMBuildLoad2(c->b, c->t_i32, cg_typed(c, cg_buf_ptr(c, h, h->step_buf), c->t_i32), "step"),
            c->t_i64, "");
}

static void cpu_kernel(CgCtx *c, CgFn *h, const KFunc *f, const Kernel *k)
{
    switch (k->kind) {
    case K_LOOP: emit_loop_call(c, h, f, k); break;
    case K_GEMM: {
        /* two GEMMs of a fused LoRA linear run as one call (rt_sgemm_pair) */
        int i = 0, cat_k;
        while (i < f->n_kernels && f->kernels[i] != k)
            i++;
        const Kernel *next = i + 1 < f->n_kernels ? f->kernels[i + 1] : NULL;
        if (i < f->n_kernels && paired_with_prev(c, f, i))
            break; /* emitted with the one before */
        if (gemm_pair(c, k, next, &cat_k))
            emit_gemm_pair(c, h, k, next, cat_k);
        else
            emit_gemm(c, h, k);
        break;
    }
    case K_CALL: emit_call(c, h, k); break;
    case K_ATTENTION:
    case K_HEAD_LOSS: fused_emit(c, h, k); break;
    }
}

static LLVMValueRef cpu_ret(CgCtx *c, CgFn *h, int buf)
{
    const KBuf *rb = &c->p->bufs[buf];
    LLVMValueRef p = cg_buf_ptr(c, h, buf);
    if (rb->dtype == IR_F32)
        return LLVMBuildLoad2(c->b, c->t_f32, cg_typed(c, p, c->t_f32), "ret");
    if (rb->dtype == IR_I32)
        return LLVMBuildSIToFP(c->b, LLVMBuildLoad2(c->b, c->t_i32, cg_typed(c, p, c->t_i32), ""), c->t_f32, "ret");
    LLVMValueRef bits = LLVMBuildZExt(c->b, LLVMBuildLoad2(c->b, c->t_i16, cg_typed(c, p, c->t_i16), ""), c->t_i32, "");
    return LLVMBuildBitCast(c->b, LLVMBuildShl(c->b, bits, cg_const_i32(c, 16), ""), c->t_f32, "ret");
}

static const char *const cpu_libs[] = {
    "-lpthread",
    "-ldl", /* the runtime loads its GEMM library at start-up (runtime/gemm.c) */
#if defined(__x86_64__) && defined(__linux__)
    "-lmvec", /* vectorised exp/log/sin/cos (llvm_module.c use_libmvec) */
#endif
    "-lm",
    NULL,
};

const CgTarget cg_target_cpu = {
    .name = "cpu",
    .prepare = cpu_prepare,
    .begin = cpu_begin,
    .kernel = cpu_kernel,
    .ret = cpu_ret,
    .libs = cpu_libs,
};

static bool cpu_build_executable(const KProgram *p, const CgOptions *opt, const char *out_path, Diags *d)
{
    return cg_module_executable(&cg_target_cpu, p, opt, out_path, d);
}

static bool cpu_emit_host_ir(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d)
{
    return cg_module_text(&cg_target_cpu, p, opt, out, d);
}

const CgBackend cg_backend_cpu = {
    .name = "cpu",
    .summary = "the host CPU: LLVM loops at O3, GEMMs on BLIS's kernels (else OpenBLAS), threads",
    .build_executable = cpu_build_executable,
    .emit_host_ir = cpu_emit_host_ir,
};
