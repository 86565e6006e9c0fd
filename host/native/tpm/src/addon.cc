// camos_tpm: TPM 2.0 access for the CAM-OS kernel through tpm2-tss ESAPI (Node-API, ABI-stable).
//
// Every command runs in a Napi::AsyncWorker so a slow TPM (a real chip takes milliseconds per command)
// never blocks the event loop. ESAPI contexts are not thread-safe and PCR extends are order-sensitive,
// so each context runs its commands strictly one at a time in call order (a FIFO per context).

#include <napi.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// Tss2_RC_Decode writes into one static buffer, so concurrent contexts must not decode at once.
std::mutex g_decodeMutex;

std::string HexRc(TSS2_RC rc) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(rc));
  return hex;
}

std::string DecodeRc(TSS2_RC rc) {
  std::lock_guard<std::mutex> lock(g_decodeMutex);
  const char* text = Tss2_RC_Decode(rc);
  return std::string(text != nullptr ? text : "unknown error") + " (rc " + HexRc(rc) + ")";
}

struct TpmFailure {
  std::string code;
  std::string message;
  TSS2_RC rc;
};

[[noreturn]] void Fail(const char* code, const std::string& message, TSS2_RC rc = 0) {
  throw TpmFailure{code, message, rc};
}

void Check(TSS2_RC rc, const std::string& what) {
  if (rc != TSS2_RC_SUCCESS) Fail("TPM_ERR_COMMAND", what + " failed: " + DecodeRc(rc), rc);
}

struct EsysDeleter {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysDeleter>;

Bytes LeftPad(const uint8_t* data, size_t size, size_t width) {
  if (size > width) Fail("TPM_ERR_INTERNAL", "TPM returned a " + std::to_string(size) + "-byte value, expected " +
                                                 std::to_string(width));
  Bytes out(width - size, 0);
  out.insert(out.end(), data, data + size);
  return out;
}

Bytes EcdsaRawSignature(const TPMT_SIGNATURE& sig) {
  if (sig.sigAlg != TPM2_ALG_ECDSA) Fail("TPM_ERR_INTERNAL", "TPM returned a non-ECDSA signature");
  const auto& e = sig.signature.ecdsa;
  Bytes out = LeftPad(e.signatureR.buffer, e.signatureR.size, 32);
  Bytes s = LeftPad(e.signatureS.buffer, e.signatureS.size, 32);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

struct Bank {
  const char* name;
  TPMI_ALG_HASH alg;
  size_t size;
};
const Bank kBanks[] = {
    {"sha1", TPM2_ALG_SHA1, 20},
    {"sha256", TPM2_ALG_SHA256, 32},
    {"sha384", TPM2_ALG_SHA384, 48},
    {"sha512", TPM2_ALG_SHA512, 64},
};

TPML_PCR_SELECTION Selection(TPMI_ALG_HASH alg, const std::vector<uint32_t>& indexes) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = alg;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (uint32_t i : indexes) sel.pcrSelections[0].pcrSelect[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  return sel;
}

// TPM2_PCR_Read answers at most 8 digests per call, so read until every requested PCR has a value.
std::map<uint32_t, Bytes> ReadPcrs(ESYS_CONTEXT* esys, const Bank& bank, std::vector<uint32_t> remaining) {
  std::map<uint32_t, Bytes> values;
  while (!remaining.empty()) {
    TPML_PCR_SELECTION in = Selection(bank.alg, remaining);
    UINT32 counter = 0;
    TPML_PCR_SELECTION* outSelRaw = nullptr;
    TPML_DIGEST* digestsRaw = nullptr;
    TSS2_RC rc = Esys_PCR_Read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, &counter, &outSelRaw,
                               &digestsRaw);
    EsysPtr<TPML_PCR_SELECTION> outSel(outSelRaw);
    EsysPtr<TPML_DIGEST> digests(digestsRaw);
    Check(rc, "TPM2_PCR_Read");
    size_t next = 0;
    for (UINT32 s = 0; s < outSel->count; s++) {
      const auto& sel = outSel->pcrSelections[s];
      for (uint32_t byte = 0; byte < sel.sizeofSelect; byte++) {
        for (uint32_t bit = 0; bit < 8; bit++) {
          if ((sel.pcrSelect[byte] & (1u << bit)) == 0) continue;
          if (next >= digests->count) Fail("TPM_ERR_INTERNAL", "TPM2_PCR_Read returned fewer digests than selected");
          const auto& d = digests->digests[next++];
          if (sel.hash == bank.alg) values[byte * 8 + bit] = Bytes(d.buffer, d.buffer + d.size);
        }
      }
    }
    size_t before = remaining.size();
    remaining.erase(std::remove_if(remaining.begin(), remaining.end(),
                                   [&](uint32_t i) { return values.count(i) != 0; }),
                    remaining.end());
    if (remaining.size() == before) {
      Fail("TPM_ERR_PCR_BANK", std::string("PCR bank ") + bank.name + " is not allocated on this TPM (PCR " +
                                   std::to_string(remaining.front()) + " has no " + bank.name + " value)");
    }
  }
  return values;
}

class TpmWorker;

// One ESAPI context. TPM fields are touched only by the single worker that runs at a time; the queue
// fields only on the main thread.
struct Session {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* esys = nullptr;
  std::map<uint32_t, ESYS_TR> keys;
  uint32_t nextKeyId = 1;

  std::deque<TpmWorker*> queue;
  bool busy = false;
  bool closeRequested = false;

  ~Session() { Release(); }

  void Release() {
    if (esys != nullptr) {
      for (auto& k : keys) Esys_FlushContext(esys, k.second);
      Esys_Finalize(&esys);
    }
    keys.clear();
    if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
    esys = nullptr;
    tcti = nullptr;
  }

  ESYS_TR Key(uint32_t id) const {
    auto it = keys.find(id);
    if (it == keys.end()) {
      Fail("TPM_ERR_KEY_HANDLE", "unknown key handle " + std::to_string(id) + " (never created, or flushed)");
    }
    return it->second;
  }

  void Enqueue(TpmWorker* w);
  void Pump();
};

class TpmWorker : public Napi::AsyncWorker {
 public:
  TpmWorker(Napi::Env env, std::shared_ptr<Session> session, const char* name)
      : Napi::AsyncWorker(env, name), session_(std::move(session)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run(Session& s) = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  virtual bool NeedsOpenContext() const { return true; }

  void Execute() override {
    try {
      if (NeedsOpenContext() && session_->esys == nullptr) Fail("TPM_ERR_CLOSED", "TPM context is closed");
      Run(*session_);
    } catch (const TpmFailure& f) {
      failure_ = f;
      SetError(f.message);
    } catch (const std::exception& e) {
      failure_ = TpmFailure{"TPM_ERR_INTERNAL", e.what(), 0};
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
    Done();
  }

  void OnError(const Napi::Error&) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Error err = Napi::Error::New(env, failure_.message);
    err.Set("code", Napi::String::New(env, failure_.code));
    if (failure_.rc != 0) err.Set("rc", Napi::Number::New(env, failure_.rc));
    deferred_.Reject(err.Value());
    Done();
  }

  std::shared_ptr<Session> session_;

 private:
  void Done() {
    session_->busy = false;
    session_->Pump();
  }

  Napi::Promise::Deferred deferred_;
  TpmFailure failure_{"", "", 0};
};

void Session::Enqueue(TpmWorker* w) {
  queue.push_back(w);
  Pump();
}

void Session::Pump() {
  if (busy || queue.empty()) return;
  TpmWorker* w = queue.front();
  queue.pop_front();
  busy = true;
  w->Queue();
}

// ---------------------------------------------------------------------------------------------- workers

class OpenWorker : public TpmWorker {
 public:
  OpenWorker(Napi::Env env, std::shared_ptr<Session> s, std::string conf, Napi::FunctionReference& ctor)
      : TpmWorker(env, std::move(s), "camos_tpm.open"), conf_(std::move(conf)), ctor_(ctor) {}

 protected:
  bool NeedsOpenContext() const override { return false; }

  void Run(Session& s) override {
    try {
      TSS2_RC rc = Tss2_TctiLdr_Initialize(conf_.c_str(), &s.tcti);
      if (rc != TSS2_RC_SUCCESS) {
        s.tcti = nullptr;
        Fail("TPM_ERR_OPEN", "cannot open TCTI '" + conf_ + "': " + DecodeRc(rc), rc);
      }
      rc = Esys_Initialize(&s.esys, s.tcti, nullptr);
      if (rc != TSS2_RC_SUCCESS) {
        s.esys = nullptr;
        Fail("TPM_ERR_OPEN", "Esys_Initialize on '" + conf_ + "' failed: " + DecodeRc(rc), rc);
      }
      // A TCTI can open without a TPM answering (e.g. a device node with no chip behind it), so send one
      // real command before declaring the TPM usable. No timeout: tpm2-tss 3.2's sync calls and the
      // swtpm TCTI block; a device TPM is bounded by the kernel driver's own command timeouts.
      EsysPtr<TPMS_CAPABILITY_DATA> cap = Probe(s.esys, &rc);
      if (rc == TPM2_RC_INITIALIZE) {
        // A simulator started without startup-clear; a kernel-managed TPM never gets here.
        Check(Esys_Startup(s.esys, TPM2_SU_CLEAR), "TPM2_Startup");
        cap = Probe(s.esys, &rc);
      }
      if (rc != TSS2_RC_SUCCESS) {
        Fail("TPM_ERR_OPEN", "TPM behind '" + conf_ + "' does not answer TPM2_GetCapability: " + DecodeRc(rc), rc);
      }
      const auto& props = cap->data.tpmProperties;
      for (UINT32 i = 0; i < props.count; i++) {
        UINT32 p = props.tpmProperty[i].property;
        UINT32 v = props.tpmProperty[i].value;
        if (p == TPM2_PT_MANUFACTURER) manufacturer_ = FourCc(v);
        if (p >= TPM2_PT_VENDOR_STRING_1 && p < TPM2_PT_VENDOR_STRING_1 + 4) vendor_ += FourCc(v);
        if (p == TPM2_PT_FIRMWARE_VERSION_1) fw1_ = v;
        if (p == TPM2_PT_FIRMWARE_VERSION_1 + 1) fw2_ = v;
      }
    } catch (...) {
      s.Release();
      throw;
    }
  }

  Napi::Value Result(Napi::Env env) override;

 private:
  static EsysPtr<TPMS_CAPABILITY_DATA> Probe(ESYS_CONTEXT* esys, TSS2_RC* rc) {
    TPMI_YES_NO more = 0;
    TPMS_CAPABILITY_DATA* raw = nullptr;
    *rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                             TPM2_PT_MANUFACTURER, 8, &more, &raw);
    return EsysPtr<TPMS_CAPABILITY_DATA>(raw);
  }

  static std::string FourCc(UINT32 v) {
    std::string out;
    for (int shift = 24; shift >= 0; shift -= 8) {
      char c = static_cast<char>((v >> shift) & 0xff);
      if (c >= 0x20 && c < 0x7f) out += c;
    }
    return out;
  }

  std::string conf_;
  Napi::FunctionReference& ctor_;
  std::string manufacturer_;
  std::string vendor_;
  UINT32 fw1_ = 0;
  UINT32 fw2_ = 0;
};

class GetRandomWorker : public TpmWorker {
 public:
  GetRandomWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t n)
      : TpmWorker(env, std::move(s), "camos_tpm.getRandom"), n_(n) {}

 protected:
  void Run(Session& s) override {
    // A TPM hands out at most one digest's worth of random bytes per command.
    while (out_.size() < n_) {
      uint32_t want = std::min<uint32_t>(n_ - static_cast<uint32_t>(out_.size()), 64);
      TPM2B_DIGEST* raw = nullptr;
      TSS2_RC rc = Esys_GetRandom(s.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, static_cast<UINT16>(want), &raw);
      EsysPtr<TPM2B_DIGEST> bytes(raw);
      Check(rc, "TPM2_GetRandom");
      if (bytes->size == 0) Fail("TPM_ERR_INTERNAL", "TPM2_GetRandom returned no bytes");
      out_.insert(out_.end(), bytes->buffer, bytes->buffer + bytes->size);
    }
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Buffer<uint8_t>::Copy(env, out_.data(), out_.size()); }

 private:
  uint32_t n_;
  Bytes out_;
};

class PcrReadWorker : public TpmWorker {
 public:
  PcrReadWorker(Napi::Env env, std::shared_ptr<Session> s, const Bank& bank, uint32_t index)
      : TpmWorker(env, std::move(s), "camos_tpm.pcrRead"), bank_(bank), index_(index) {}

 protected:
  void Run(Session& s) override { value_ = ReadPcrs(s.esys, bank_, {index_})[index_]; }
  Napi::Value Result(Napi::Env env) override {
    return Napi::Buffer<uint8_t>::Copy(env, value_.data(), value_.size());
  }

 private:
  const Bank& bank_;
  uint32_t index_;
  Bytes value_;
};

class PcrExtendWorker : public TpmWorker {
 public:
  PcrExtendWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t index, Bytes digest)
      : TpmWorker(env, std::move(s), "camos_tpm.pcrExtend"), index_(index), digest_(std::move(digest)) {}

 protected:
  void Run(Session& s) override {
    TPML_DIGEST_VALUES values{};
    values.count = 1;
    values.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memcpy(values.digests[0].digest.sha256, digest_.data(), 32);
    Check(Esys_PCR_Extend(s.esys, ESYS_TR_PCR0 + index_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values),
          "TPM2_PCR_Extend(PCR " + std::to_string(index_) + ")");
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  uint32_t index_;
  Bytes digest_;
};

class PcrResetWorker : public TpmWorker {
 public:
  PcrResetWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t index)
      : TpmWorker(env, std::move(s), "camos_tpm.pcrReset"), index_(index) {}

 protected:
  void Run(Session& s) override {
    Check(Esys_PCR_Reset(s.esys, ESYS_TR_PCR0 + index_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE),
          "TPM2_PCR_Reset(PCR " + std::to_string(index_) + ")");
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  uint32_t index_;
};

class CreateKeyWorker : public TpmWorker {
 public:
  CreateKeyWorker(Napi::Env env, std::shared_ptr<Session> s, ESYS_TR hierarchy, bool restricted)
      : TpmWorker(env, std::move(s), "camos_tpm.createSigningKey"), hierarchy_(hierarchy), restricted_(restricted) {}

 protected:
  void Run(Session& s) override {
    // The template is fixed and `unique` is empty, so a primary key is a pure function of the hierarchy
    // seed and this template: the same TPM yields the same key after every boot.
    TPM2B_PUBLIC in{};
    auto& pub = in.publicArea;
    pub.type = TPM2_ALG_ECC;
    pub.nameAlg = TPM2_ALG_SHA256;
    pub.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                           TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;
    // A restricted key refuses to sign digests that could pass for a TPM-made attestation, which is
    // what makes its quotes trustworthy; it therefore cannot serve arbitrary sign() calls.
    if (restricted_) pub.objectAttributes |= TPMA_OBJECT_RESTRICTED;
    auto& ecc = pub.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;

    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_DATA outsideInfo{};
    TPML_PCR_SELECTION creationPcr{};
    ESYS_TR handle = ESYS_TR_NONE;
    TPM2B_PUBLIC* outPubRaw = nullptr;
    TPM2B_CREATION_DATA* creationDataRaw = nullptr;
    TPM2B_DIGEST* creationHashRaw = nullptr;
    TPMT_TK_CREATION* ticketRaw = nullptr;
    TSS2_RC rc = Esys_CreatePrimary(s.esys, hierarchy_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                    &in, &outsideInfo, &creationPcr, &handle, &outPubRaw, &creationDataRaw,
                                    &creationHashRaw, &ticketRaw);
    EsysPtr<TPM2B_PUBLIC> outPub(outPubRaw);
    EsysPtr<TPM2B_CREATION_DATA> creationData(creationDataRaw);
    EsysPtr<TPM2B_DIGEST> creationHash(creationHashRaw);
    EsysPtr<TPMT_TK_CREATION> ticket(ticketRaw);
    Check(rc, "TPM2_CreatePrimary");
    try {
      TPM2B_PUBLIC* readRaw = nullptr;
      TPM2B_NAME* nameRaw = nullptr;
      TPM2B_NAME* qnRaw = nullptr;
      rc = Esys_ReadPublic(s.esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &readRaw, &nameRaw, &qnRaw);
      EsysPtr<TPM2B_PUBLIC> readPub(readRaw);
      EsysPtr<TPM2B_NAME> name(nameRaw);
      EsysPtr<TPM2B_NAME> qn(qnRaw);
      Check(rc, "TPM2_ReadPublic");
      const auto& point = outPub->publicArea.unique.ecc;
      point_.push_back(0x04);
      Bytes x = LeftPad(point.x.buffer, point.x.size, 32);
      Bytes y = LeftPad(point.y.buffer, point.y.size, 32);
      point_.insert(point_.end(), x.begin(), x.end());
      point_.insert(point_.end(), y.begin(), y.end());
      name_.assign(name->name, name->name + name->size);
      qualifiedName_.assign(qn->name, qn->name + qn->size);
    } catch (...) {
      Esys_FlushContext(s.esys, handle);
      throw;
    }
    id_ = s.nextKeyId++;
    s.keys[id_] = handle;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("handle", Napi::Number::New(env, id_));
    o.Set("publicPoint", Napi::Buffer<uint8_t>::Copy(env, point_.data(), point_.size()));
    o.Set("name", Napi::Buffer<uint8_t>::Copy(env, name_.data(), name_.size()));
    o.Set("qualifiedName", Napi::Buffer<uint8_t>::Copy(env, qualifiedName_.data(), qualifiedName_.size()));
    return o;
  }

 private:
  ESYS_TR hierarchy_;
  bool restricted_;
  uint32_t id_ = 0;
  Bytes point_;
  Bytes name_;
  Bytes qualifiedName_;
};

class SignWorker : public TpmWorker {
 public:
  SignWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t key, Bytes digest)
      : TpmWorker(env, std::move(s), "camos_tpm.sign"), key_(key), digest_(std::move(digest)) {}

 protected:
  void Run(Session& s) override {
    ESYS_TR handle = s.Key(key_);
    TPM2B_DIGEST digest{};
    digest.size = 32;
    std::memcpy(digest.buffer, digest_.data(), 32);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    TPMT_TK_HASHCHECK validation{};
    validation.tag = TPM2_ST_HASHCHECK;
    validation.hierarchy = TPM2_RH_NULL;
    TPMT_SIGNATURE* sigRaw = nullptr;
    TSS2_RC rc = Esys_Sign(s.esys, handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &digest, &scheme,
                           &validation, &sigRaw);
    EsysPtr<TPMT_SIGNATURE> sig(sigRaw);
    Check(rc, "TPM2_Sign(key " + std::to_string(key_) + ")");
    signature_ = EcdsaRawSignature(*sig);
  }
  Napi::Value Result(Napi::Env env) override {
    return Napi::Buffer<uint8_t>::Copy(env, signature_.data(), signature_.size());
  }

 private:
  uint32_t key_;
  Bytes digest_;
  Bytes signature_;
};

class QuoteWorker : public TpmWorker {
 public:
  QuoteWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t key, std::vector<uint32_t> pcrs, Bytes nonce)
      : TpmWorker(env, std::move(s), "camos_tpm.quote"), key_(key), pcrs_(std::move(pcrs)), nonce_(std::move(nonce)) {}

 protected:
  void Run(Session& s) override {
    ESYS_TR handle = s.Key(key_);
    // Read before quoting so the caller gets the values the quote's pcrDigest should cover; if anything
    // extends in between, the verifier sees a digest mismatch rather than a silent inconsistency.
    values_ = ReadPcrs(s.esys, kBanks[1], pcrs_);
    TPM2B_DATA qualifying{};
    qualifying.size = static_cast<UINT16>(nonce_.size());
    std::memcpy(qualifying.buffer, nonce_.data(), nonce_.size());
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // use the key's own ECDSA/SHA-256 scheme
    TPML_PCR_SELECTION sel = Selection(TPM2_ALG_SHA256, pcrs_);
    TPM2B_ATTEST* quotedRaw = nullptr;
    TPMT_SIGNATURE* sigRaw = nullptr;
    TSS2_RC rc = Esys_Quote(s.esys, handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &scheme, &sel,
                            &quotedRaw, &sigRaw);
    EsysPtr<TPM2B_ATTEST> quoted(quotedRaw);
    EsysPtr<TPMT_SIGNATURE> sig(sigRaw);
    Check(rc, "TPM2_Quote(key " + std::to_string(key_) + ")");
    attest_.assign(quoted->attestationData, quoted->attestationData + quoted->size);
    signature_ = EcdsaRawSignature(*sig);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("attest", Napi::Buffer<uint8_t>::Copy(env, attest_.data(), attest_.size()));
    o.Set("signature", Napi::Buffer<uint8_t>::Copy(env, signature_.data(), signature_.size()));
    Napi::Array values = Napi::Array::New(env, values_.size());
    uint32_t i = 0;
    for (auto& [index, value] : values_) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("index", Napi::Number::New(env, index));
      v.Set("value", Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size()));
      values.Set(i++, v);
    }
    o.Set("pcrValues", values);
    return o;
  }

 private:
  uint32_t key_;
  std::vector<uint32_t> pcrs_;
  Bytes nonce_;
  std::map<uint32_t, Bytes> values_;
  Bytes attest_;
  Bytes signature_;
};

class FlushKeyWorker : public TpmWorker {
 public:
  FlushKeyWorker(Napi::Env env, std::shared_ptr<Session> s, uint32_t key)
      : TpmWorker(env, std::move(s), "camos_tpm.flushKey"), key_(key) {}

 protected:
  void Run(Session& s) override {
    ESYS_TR handle = s.Key(key_);
    s.keys.erase(key_);
    Check(Esys_FlushContext(s.esys, handle), "TPM2_FlushContext(key " + std::to_string(key_) + ")");
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  uint32_t key_;
};

class CloseWorker : public TpmWorker {
 public:
  CloseWorker(Napi::Env env, std::shared_ptr<Session> s) : TpmWorker(env, std::move(s), "camos_tpm.close") {}

 protected:
  bool NeedsOpenContext() const override { return false; }
  void Run(Session& s) override { s.Release(); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
};

// ---------------------------------------------------------------------------------------------- JS class

uint32_t ArgIndex(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t max) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= max) || v != static_cast<double>(static_cast<uint32_t>(v))) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer in 0.." + std::to_string(max) +
                                                ", got " + info[i].ToString().Utf8Value());
  }
  return static_cast<uint32_t>(v);
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* what, size_t minSize, size_t maxSize) {
  if (info.Length() <= i || !info[i].IsTypedArray()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  }
  auto arr = info[i].As<Napi::Uint8Array>();
  if (arr.ByteLength() < minSize || arr.ByteLength() > maxSize) {
    std::string want = minSize == maxSize ? std::to_string(minSize)
                                          : std::to_string(minSize) + ".." + std::to_string(maxSize);
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be " + want + " bytes, got " +
                                                std::to_string(arr.ByteLength()));
  }
  return Bytes(arr.Data(), arr.Data() + arr.ByteLength());
}

struct AddonData {
  Napi::FunctionReference tpmCtor;
};

class Tpm : public Napi::ObjectWrap<Tpm> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTpm",
                       {
                           InstanceMethod<&Tpm::GetRandom>("getRandom"),
                           InstanceMethod<&Tpm::PcrRead>("pcrRead"),
                           InstanceMethod<&Tpm::PcrExtend>("pcrExtend"),
                           InstanceMethod<&Tpm::PcrReset>("pcrReset"),
                           InstanceMethod<&Tpm::CreateSigningKey>("createSigningKey"),
                           InstanceMethod<&Tpm::Sign>("sign"),
                           InstanceMethod<&Tpm::Quote>("quote"),
                           InstanceMethod<&Tpm::FlushKey>("flushKey"),
                           InstanceMethod<&Tpm::Close>("close"),
                       });
  }

  explicit Tpm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tpm>(info) {}

  std::shared_ptr<Session> session_;

 private:
  Session& Open(const Napi::CallbackInfo& info) {
    if (!session_) throw Napi::Error::New(info.Env(), "NativeTpm objects come from open(), not from new");
    if (session_->closeRequested) {
      Napi::Error err = Napi::Error::New(info.Env(), "TPM context is closed");
      err.Set("code", Napi::String::New(info.Env(), "TPM_ERR_CLOSED"));
      throw err;
    }
    return *session_;
  }

  Napi::Value Start(TpmWorker* w) {
    Napi::Promise p = w->Promise();
    session_->Enqueue(w);
    return p;
  }

  Napi::Value GetRandom(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t n = ArgIndex(info, 0, "byte count", 65536);
    return Start(new GetRandomWorker(info.Env(), session_, n));
  }

  Napi::Value PcrRead(const Napi::CallbackInfo& info) {
    Open(info);
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "bank must be a string");
    std::string name = info[0].As<Napi::String>().Utf8Value();
    const Bank* bank = nullptr;
    for (const auto& b : kBanks)
      if (name == b.name) bank = &b;
    if (bank == nullptr) {
      throw Napi::RangeError::New(info.Env(), "unknown PCR bank '" + name + "' (sha1, sha256, sha384, sha512)");
    }
    uint32_t index = ArgIndex(info, 1, "PCR index", 23);
    return Start(new PcrReadWorker(info.Env(), session_, *bank, index));
  }

  Napi::Value PcrExtend(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t index = ArgIndex(info, 0, "PCR index", 23);
    Bytes digest = ArgBytes(info, 1, "sha256 digest", 32, 32);
    return Start(new PcrExtendWorker(info.Env(), session_, index, std::move(digest)));
  }

  Napi::Value PcrReset(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t index = ArgIndex(info, 0, "PCR index", 23);
    return Start(new PcrResetWorker(info.Env(), session_, index));
  }

  Napi::Value CreateSigningKey(const Napi::CallbackInfo& info) {
    Open(info);
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBoolean()) {
      throw Napi::TypeError::New(info.Env(), "createSigningKey(hierarchy: string, restricted: boolean)");
    }
    std::string h = info[0].As<Napi::String>().Utf8Value();
    ESYS_TR hierarchy;
    if (h == "owner") {
      hierarchy = ESYS_TR_RH_OWNER;
    } else if (h == "endorsement") {
      hierarchy = ESYS_TR_RH_ENDORSEMENT;
    } else {
      throw Napi::RangeError::New(info.Env(), "hierarchy must be 'owner' or 'endorsement', got '" + h + "'");
    }
    return Start(new CreateKeyWorker(info.Env(), session_, hierarchy, info[1].As<Napi::Boolean>().Value()));
  }

  Napi::Value Sign(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t key = ArgIndex(info, 0, "key handle", UINT32_MAX);
    Bytes digest = ArgBytes(info, 1, "sha256 digest", 32, 32);
    return Start(new SignWorker(info.Env(), session_, key, std::move(digest)));
  }

  Napi::Value Quote(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t key = ArgIndex(info, 0, "key handle", UINT32_MAX);
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "PCR indexes must be an array");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<uint32_t> pcrs;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 23) || d != static_cast<double>(static_cast<uint32_t>(d))) {
        throw Napi::RangeError::New(info.Env(), "PCR indexes must be integers in 0..23");
      }
      pcrs.push_back(static_cast<uint32_t>(d));
    }
    std::sort(pcrs.begin(), pcrs.end());
    pcrs.erase(std::unique(pcrs.begin(), pcrs.end()), pcrs.end());
    if (pcrs.empty()) throw Napi::RangeError::New(info.Env(), "a quote needs at least one PCR");
    // TPM2B_DATA holds at most one TPMT_HA; TPMs accept qualifying data up to the largest digest size.
    Bytes nonce = ArgBytes(info, 2, "nonce", 0, 64);
    return Start(new QuoteWorker(info.Env(), session_, key, std::move(pcrs), std::move(nonce)));
  }

  Napi::Value FlushKey(const Napi::CallbackInfo& info) {
    Open(info);
    uint32_t key = ArgIndex(info, 0, "key handle", UINT32_MAX);
    return Start(new FlushKeyWorker(info.Env(), session_, key));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!session_) throw Napi::Error::New(info.Env(), "NativeTpm objects come from open(), not from new");
    // A repeated close() queues behind the first, so every caller's promise resolves only once the
    // context is really gone.
    session_->closeRequested = true;
    return Start(new CloseWorker(info.Env(), session_));
  }
};

Napi::Value OpenWorker::Result(Napi::Env env) {
  Napi::Object obj = ctor_.New({});
  Tpm::Unwrap(obj)->session_ = session_;
  Napi::Object info = Napi::Object::New(env);
  info.Set("manufacturer", Napi::String::New(env, manufacturer_));
  info.Set("vendor", Napi::String::New(env, vendor_));
  // The two firmware words are vendor-defined; hex is how tpm2_getcap shows them too.
  char fw[32];
  std::snprintf(fw, sizeof fw, "%08x.%08x", static_cast<unsigned>(fw1_), static_cast<unsigned>(fw2_));
  info.Set("firmwareVersion", Napi::String::New(env, fw));
  obj.Set("info", info);
  return obj;
}

Napi::Value OpenTpm(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "TCTI must be a string");
  std::string conf = info[0].As<Napi::String>().Utf8Value();
  if (conf.empty()) throw Napi::TypeError::New(info.Env(), "TCTI must not be empty");
  auto* data = info.Env().GetInstanceData<AddonData>();
  auto session = std::make_shared<Session>();
  // Opening runs on its own (there is no queue yet); it is the only worker this session has until it
  // resolves, so marking the session busy keeps later calls queued behind it.
  session->busy = true;
  auto* w = new OpenWorker(info.Env(), session, conf, data->tpmCtor);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->tpmCtor = Napi::Persistent(Tpm::Define(env));
  env.SetInstanceData(data);
  exports.Set("open", Napi::Function::New<OpenTpm>(env, "open"));
  return exports;
}

}  // namespace

NODE_API_MODULE(camos_tpm, Init)
