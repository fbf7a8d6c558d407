// Before the bundle loads: kaiban-board must not send telemetry.
window.KAIBAN_TELEMETRY_OPT_OUT = true;
