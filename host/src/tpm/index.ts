export {
  type PcrSelection,
  parseAttest,
  type QuoteFailureReason,
  type QuoteVerification,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  type TpmsAttest,
  type VerifyQuoteInput,
  verifyQuote,
} from './attest.js';
export { TpmError, type TpmErrorCode } from './errors.js';
export { p256PublicKey, p1363ToDer } from './keys.js';
export {
  checkEventSequence,
  DEFAULT_APP_PCR,
  type MeasurementEvent,
  MeasurementLog,
  type MeasurementLogOptions,
  readEventLog,
  replay,
} from './measurement-log.js';
export {
  defaultTcti,
  type Hierarchy,
  normalizeTcti,
  openTpm,
  type PcrBank,
  type SigningKeyOptions,
  Tpm,
  type TpmInfo,
  type TpmKey,
  type TpmQuote,
  type TpmStatus,
  type TpmUnavailableReason,
  tpmStatus,
} from './tpm.js';
