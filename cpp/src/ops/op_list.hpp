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
    X(Softmax, softmax)             /* over channels (axis 0) or positions (axis 1) */             \
    X(MaxPool, max_pool)                                                                             \
    X(AvgPool, avg_pool)                                                                             \
    X(GlobalAvgPool, global_avg_pool)                                                                \
    X(GlobalMaxPool, global_max_pool)                                                                \
    X(Add, add)                     /* elementwise sum of two tensors of one shape (residuals) */  \
    X(Concat, concat)               /* along channels */                                           \
    X(Flatten, flatten)             /* (C, L) -> (C * L, 1), channel- or position-major */
