// librelorac_spm: a C face on SentencePiece (a C++ library), loaded at run time by
// runtime/tokenizer.c (dlopen) only when a SentencePiece model is used, so that trainers
// and relorac need neither SentencePiece nor the C++ runtime otherwise. Each function
// catches everything: no C++ exception crosses into C. The functions and their contract
// are declared in runtime/tokenizer.c (struct SpmApi); RSPM_ABI changes with them.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#define RSPM_ABI 1

namespace {

void set_err(char *err, size_t cap, const std::string &what)
{
    if (cap > 0)
        std::snprintf(err, cap, "%s", what.c_str());
}

// The lines of the input files, one sentence each, read as the trainer asks for them.
class FileLines : public sentencepiece::SentenceIterator {
  public:
    FileLines(const char *const *paths, int n) : paths_(paths, paths + n) { Next(); }
    bool done() const override { return done_; }
    void Next() override
    {
        for (;;) {
            if (in_.is_open() && std::getline(in_, line_))
                return;
            if (in_.is_open() && in_.bad()) {
                status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                                      paths_[at_ - 1] + ": cannot read");
                done_ = true;
                return;
            }
            in_.close();
            in_.clear();
            if (at_ >= paths_.size()) {
                done_ = true;
                return;
            }
            in_.open(paths_[at_++], std::ios::binary);
            if (!in_) {
                status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                                      paths_[at_ - 1] + ": cannot open");
                done_ = true;
                return;
            }
        }
    }
    const std::string &value() const override { return line_; }
    sentencepiece::util::Status status() const override { return status_; }

  private:
    std::vector<std::string> paths_;
    size_t at_ = 0;
    std::ifstream in_;
    std::string line_;
    bool done_ = false;
    sentencepiece::util::Status status_;
};

} // namespace

extern "C" {

int rspm_abi(void)
{
    return RSPM_ABI;
}

void *rspm_load(const char *path, char *err, size_t cap)
{
    try {
        auto *sp = new sentencepiece::SentencePieceProcessor();
        auto st = sp->Load(path);
        if (!st.ok()) {
            set_err(err, cap, st.ToString());
            delete sp;
            return nullptr;
        }
        return sp;
    } catch (const std::exception &x) {
        set_err(err, cap, x.what());
    } catch (...) {
        set_err(err, cap, "unknown C++ exception");
    }
    return nullptr;
}

void rspm_free(void *m)
{
    delete static_cast<sentencepiece::SentencePieceProcessor *>(m);
}

int rspm_vocab(void *m)
{
    return static_cast<sentencepiece::SentencePieceProcessor *>(m)->GetPieceSize();
}

long rspm_encode(void *m, const char *text, size_t len, int32_t **ids, char *err, size_t cap)
{
    try {
        std::vector<int> out;
        auto st = static_cast<sentencepiece::SentencePieceProcessor *>(m)->Encode(std::string(text, len), &out);
        if (!st.ok()) {
            set_err(err, cap, st.ToString());
            return -1;
        }
        *ids = static_cast<int32_t *>(std::malloc((out.size() + 1) * sizeof(int32_t)));
        if (!*ids) {
            set_err(err, cap, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < out.size(); i++)
            (*ids)[i] = out[i];
        return static_cast<long>(out.size());
    } catch (const std::exception &x) {
        set_err(err, cap, x.what());
    } catch (...) {
        set_err(err, cap, "unknown C++ exception");
    }
    return -1;
}

// The text piece `id` adds after other pieces, as SentencePiece's decoder writes it: a byte
// piece <0xNN> is that byte, a control or unused piece nothing, the unknown piece " \u2047 ",
// any other its text with U+2581 (the word-boundary mark) as a space. Returns the length
// (copied up to cap), or -1 for an id outside the vocabulary.
long rspm_piece(void *m, int id, char *buf, size_t cap)
{
    auto *sp = static_cast<sentencepiece::SentencePieceProcessor *>(m);
    if (id < 0 || id >= sp->GetPieceSize())
        return -1;
    std::string s;
    const std::string &piece = sp->IdToPiece(id);
    if (sp->IsByte(id) && piece.size() == 6) {
        s.push_back(static_cast<char>(std::strtol(piece.substr(3, 2).c_str(), nullptr, 16)));
    } else if (sp->IsControl(id) || sp->IsUnused(id)) {
    } else if (sp->IsUnknown(id)) {
        s = " \xE2\x81\x87 ";
    } else {
        static const std::string mark = "\xE2\x96\x81";
        for (size_t i = 0; i < piece.size();) {
            if (piece.compare(i, mark.size(), mark) == 0) {
                s.push_back(' ');
                i += mark.size();
            } else {
                s.push_back(piece[i++]);
            }
        }
    }
    std::memcpy(buf, s.data(), s.size() < cap ? s.size() : cap);
    return static_cast<long>(s.size());
}

// Trains a model on the lines of the input files with SentencePiece's own options
// (keys[i]=values[i], as spm_train takes them), writing model_prefix.model and .vocab.
int rspm_train(const char *const *inputs, int n_inputs, const char *const *keys, const char *const *values, int n,
               char *err, size_t cap)
{
    try {
        std::unordered_map<std::string, std::string> kw;
        for (int i = 0; i < n; i++)
            kw[keys[i]] = values[i];
        FileLines lines(inputs, n_inputs);
        auto st = sentencepiece::SentencePieceTrainer::Train(kw, &lines);
        if (!st.ok()) {
            set_err(err, cap, st.ToString());
            return -1;
        }
        return 0;
    } catch (const std::exception &x) {
        set_err(err, cap, x.what());
    } catch (...) {
        set_err(err, cap, "unknown C++ exception");
    }
    return -1;
}

} // extern "C"
