// The IR ops, one line each: X(Kind, family) declares OpKind::Kind and puts the rules that the
// family file defines in `OpRules family_rules()` into the registry (ops/registry.cpp). Adding
// an op is this line and its family file.
#pragma once

#define TSVIZ_OP_LIST(X)                                                                             \
    X(Input, input)                                                                                  \
    X(Conv, conv)                   /* filter layer: (F, C/group, K) weights, bias, stride, dilation, pads */ \
    X(Dense, dense)                 /* filter layer: (F, X) weights, bias; input (X, 1) */          \
    X(Affine, affine)               /* per-channel x * scale[c] + shift[c]: BatchNorm, constant Mul/Add/Sub/Div */ \
    X(Relu, relu)                                                                                    \
    X(LeakyRelu, leaky_relu)                                                                         \
    X(Elu, elu)                                                                                      \
    X(Sigmoid, sigmoid)                                                                              \
    X(Tanh, tanh)                                                                                    \
    X(Gelu, gelu)                                                                                    \
    X(Erf, erf)                                                                                      \
    X(Silu, silu)                   /* x * sigmoid(x), fused from its ONNX pattern */              \
    X(Softplus, softplus)                                                                            \
    X(Mish, mish)                                                                                    \
    X(Selu, selu)                                                                                    \
    X(HardSigmoid, hard_sigmoid)                                                                     \
    X(HardSwish, hard_swish)                                                                         \
    X(Softsign, softsign)                                                                            \
    X(Clip, clip)                   /* clamp to [alpha, beta]: ReLU6 */                            \
    X(PRelu, prelu)                 /* slope per channel in scale */                               \
    X(Softmax, softmax)             /* over channels (axis 0) or positions (axis 1) */             \
    X(MaxPool, max_pool)                                                                             \
    X(AvgPool, avg_pool)                                                                             \
    X(GlobalAvgPool, global_avg_pool)                                                                \
    X(GlobalMaxPool, global_max_pool)                                                                \
    X(Add, add)                     /* elementwise sum of two tensors of one shape (residuals) */  \
    X(Mul, mul)                     /* elementwise product of two tensors of one shape (gating) */ \
    X(Sub, sub)                                                                                      \
    X(Div, div)                                                                                      \
    X(Concat, concat)               /* along channels */                                           \
    X(Flatten, flatten)             /* (C, L) -> (C * L, 1), channel- or position-major */        \
    X(Slice, slice)                 /* positions [start, end) of the time axis */
