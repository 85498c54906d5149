// Counts the operators libtorch dispatches in a process, for comparing how
// many ops (and so, on a GPU at small batches, how much host-side launch
// work) a training step of ours and of the PyTorch reference issue.
//
// Built and preloaded by scripts/op_count.sh:
//   LD_PRELOAD=op_count.so OP_COUNT_OUT=counts <program>
// At exit each process writes counts.<pid>, one line per operator name: the
// scope (op, or node for a backward node), the name, calls, and calls that
// dispatched no other operator inside them ("leaves": the ones that run
// kernels, plus views and allocations). A multi-tensor `_foreach_` operator
// and `cat` count once and what they call not at all: on CUDA each is one
// or a few kernels (cat copies up to 128 contiguous inputs per launch); on
// the CPU they fall back to one operator per tensor.
// With OP_COUNT_TREE set, an operator is named with its callers
// ("aten::conv2d > aten::convolution > ...").
#include <ATen/record_function.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

struct Count {
    long calls = 0;
    long leaves = 0;
};

std::mutex mu;
std::map<std::string, Count>* counts = nullptr;

// an operator that CUDA runs in one or a few kernels however many tensors
// it takes (in tree mode `name` ends with the operator's own name)
bool batched(const std::string& name) {
    auto ends = [&](const char* s) {
        std::string t(s);
        return name.size() >= t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0;
    };
    return name.find("_foreach_") != std::string::npos || ends("aten::cat") || ends("aten::_cat");
}

struct Frame {
    bool has_child = false;
    std::string name;
    // inside a batched operator (`_foreach_`, cat): not counted
    bool hidden = false;
};
thread_local std::vector<Frame> stack;

const bool tree = std::getenv("OP_COUNT_TREE") != nullptr;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    std::string parent;
    bool hidden = false;
    if (!stack.empty()) {
        stack.back().has_child = true;
        parent = stack.back().name;
        hidden = stack.back().hidden || batched(stack.back().name);
    }
    std::string name = parent.empty() ? std::string() : parent + " > ";
    name += fn.name();
    stack.push_back(Frame{false, tree ? name : std::string(fn.name()), hidden});
    return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
    if (stack.empty()) return;
    bool leaf = !stack.back().has_child;
    bool hidden = stack.back().hidden;
    std::string stack_name = std::move(stack.back().name);
    stack.pop_back();
    if (hidden) return;
    if (batched(stack_name)) leaf = true;
    std::string key = fn.scope() == at::RecordScope::BACKWARD_FUNCTION ? "node\t" : "op\t";
    key += tree ? stack_name : std::string(fn.name());
    std::lock_guard<std::mutex> g(mu);
    Count& c = (*counts)[key];
    c.calls += 1;
    c.leaves += leaf ? 1 : 0;
}

void dump() {
    const char* prefix = std::getenv("OP_COUNT_OUT");
    if (!prefix || !counts) return;
    // one file per process: a benchmark's reference runs in a child process
    std::string path = std::string(prefix) + "." + std::to_string(getpid());
    std::lock_guard<std::mutex> g(mu);
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return;
    for (auto& [k, c] : *counts) std::fprintf(f, "%s\t%ld\t%ld\n", k.c_str(), c.calls, c.leaves);
    std::fclose(f);
}

struct Install {
    Install() {
        counts = new std::map<std::string, Count>();
        at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end)
                                  .needsInputs(false)
                                  .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
        std::atexit(dump);
    }
} install;

}  // namespace
