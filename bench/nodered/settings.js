/**
 * Node-RED settings of the Mashpipe endpoint benchmark: headless (no editor, no admin API),
 * on 127.0.0.1 only, quiet logs, no telemetry or diagnostics, flows read from the file the
 * benchmark copies into the user directory. The port and the upstream URL come from the
 * environment (NODE_RED_BENCH_PORT, UPSTREAM_URL: the flow's http request node reads it).
 */
module.exports = {
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: false,
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.NODE_RED_BENCH_PORT || 1880),
    httpAdminRoot: false,
    disableEditor: true,
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    logging: {
        console: { level: "warn", metrics: false, audit: false }
    },
    exportGlobalContextKeys: false,
    externalModules: {},
    functionExternalModules: false,
    functionTimeout: 0,
    functionGlobalContext: {},
    debugMaxLength: 1000,
    editorTheme: { projects: { enabled: false } }
};
