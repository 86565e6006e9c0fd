// The WIT types of this driver, generated from wit/ (see sdk/src/wit/guest-types.ts).
/// <reference path="../../../../sdk/generated/kernel@0.1.0/driver.d.ts" />
