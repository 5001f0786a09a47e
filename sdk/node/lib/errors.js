'use strict';
// Errors the SDK throws. An API that cannot work behind the hub throws `HubUnsupportedError`
// naming it and saying why; it never silently does nothing.

class HubError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'HubError';
    this.code = code;
  }
}

class HubUnsupportedError extends HubError {
  constructor(api, why) {
    super(`${api} is not supported behind socketio-hub: ${why}`, 'UNSUPPORTED');
    this.name = 'HubUnsupportedError';
    this.api = api;
  }
}

module.exports = { HubError, HubUnsupportedError };
