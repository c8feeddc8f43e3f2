/* pixel_middleware browser script: Smart-Pixel-style page and event requests with the anonymous
 * switch. Configured by the JSON block the middleware injects; needs no inline script, so it runs
 * under "script-src 'self'". The server applies the same rules again to every request. */
(function (w, d) {
  "use strict";

  var MAX_URL = 30720;
  /* Filled in by the server from pixel_middleware/wire.py when it serves this file, so the browser
   * and the server drop the same parameters. Names are compared in lower case. */
  var IDENTIFIERS = /*pixel:identifiers*/["eid", "ceid", "one", "fns", "uc701", "ui5", "fpv", "fpt"]/*end*/;
  var IDENTIFIER_PREFIXES = /*pixel:prefixes*/["x-wt-"]/*end*/;
  var SERVER_SET = ["eid", "nc", "one", "fns"];

  function readCookie(name) {
    var parts = d.cookie ? d.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var pair = parts[i];
      var eq = pair.indexOf("=");
      if (eq > -1 && pair.slice(0, eq).trim() === name) {
        return pair.slice(eq + 1).trim();
      }
    }
    return null;
  }

  /* The Smart Pixel's rule, plus Global Privacy Control as the server applies it. */
  function isAnonymous(ui, cookieValue, gpc, honorGpc) {
    if (!ui.enableAnonymousFunction) return false;
    var present = !!cookieValue;
    if (ui.anonymousOptIn) return !present;
    return present || !!(gpc && honorGpc);
  }

  function key(name) {
    return String(name).split("[")[0].toLowerCase();
  }

  function isIdentifier(name) {
    var k = key(name);
    if (IDENTIFIERS.indexOf(k) > -1) return true;
    for (var i = 0; i < IDENTIFIER_PREFIXES.length; i++) {
      if (k.indexOf(IDENTIFIER_PREFIXES[i]) === 0) return true;
    }
    return false;
  }

  /* params: [[name, value], ...] in plain text; returns the pairs that may leave the browser. */
  function enforce(params, ui, anonymous) {
    var out = [];
    var suppressed = [];
    for (var s = 0; s < (ui.suppressParameter || []).length; s++) {
      suppressed.push(key(ui.suppressParameter[s]));
    }
    for (var i = 0; i < params.length; i++) {
      var name = params[i][0];
      if (SERVER_SET.indexOf(key(name)) > -1) continue;
      if (anonymous && (isIdentifier(name) || suppressed.indexOf(key(name)) > -1)) continue;
      out.push([name, params[i][1]]);
    }
    if (anonymous) out.unshift(["nc", "1"]);
    return out;
  }

  var el = d.getElementById("pixel-middleware-config");
  var config = null;
  try {
    config = el ? JSON.parse(el.textContent) : null;
  } catch (e) {
    config = null;
  }

  function anonymousNow() {
    /* A consent manager decided on the server: follow it, not the choice cookie. */
    if (config.source) return config.anonymous;
    var ui = config.userIdentification;
    return isAnonymous(ui, readCookie(ui.anonymousCookieName),
      config.gpc || w.navigator.globalPrivacyControl === true, config.honorGlobalPrivacyControl);
  }

  /* An anonymous visitor's URLs keep no fragment and only the allowed query parameters: query
   * strings carry whatever the site put there (emails, tokens). The server does the same. */
  function withoutQuery(url) {
    var allow = config.anonymousQueryAllowlist || [];
    var base = url.split("#")[0].split("?")[0];
    var query = (url.split("#")[0].split("?")[1] || "").split("&");
    var kept = [];
    for (var i = 0; i < query.length; i++) {
      if (query[i] && allow.indexOf(query[i].split("=")[0]) > -1) kept.push(query[i]);
    }
    return kept.length ? base + "?" + kept.join("&") : base;
  }

  function referrerField(anonymous) {
    var ref = d.referrer;
    if (!ref) return "0";
    var a = d.createElement("a");
    a.href = ref;
    if (a.host === w.location.host) return "1";
    return encodeURIComponent(anonymous ? withoutQuery(ref) : ref);
  }

  function send(url) {
    var nav = w.navigator;
    if (nav.sendBeacon && nav.sendBeacon(url)) return;
    var img = new Image(1, 1);
    img.src = url;
  }

  /* The Smart Pixel's full opt-out: nothing at all is sent for such a visitor. */
  function trackingOptedOut() {
    return config.tracked === false || !!readCookie(config.optOutName || "webtrekkOptOut");
  }

  /* Requests asked for while anonymize() is under way wait for the new identity. */
  var waiting = null;

  function request(extra) {
    if (trackingOptedOut()) return null;
    if (waiting) {
      waiting.push(extra);
      return null;
    }
    var s = w.screen;
    var anonymous = anonymousNow();
    var p = ["600", encodeURIComponent(config.page.name), "1", s.width + "x" + s.height,
      String(s.colorDepth), w.navigator.cookieEnabled ? "1" : "0", String(Date.now()),
      referrerField(anonymous), w.innerWidth + "x" + w.innerHeight, "0"].join(",");
    var params = enforce(config.page.params.concat(extra || []).concat([
      ["pu", anonymous ? withoutQuery(w.location.href) : w.location.href.split("#")[0]],
      ["la", w.navigator.language || ""]
    ]), config.userIdentification, anonymous);
    var eid = !anonymous && config.everIdCookie ? readCookie(config.everIdCookie) : null;
    if (eid && /^\d{19}$/.test(eid)) params.unshift(["eid", eid]);
    var url = config.endpoint + "?p=" + p;
    for (var i = 0; i < params.length; i++) {
      var part = "&" + params[i][0] + "=" + encodeURIComponent(params[i][1]);
      /* Mapp cuts requests at 30,720 characters; drop whole parameters instead of cutting one. */
      if (url.length + part.length > MAX_URL) continue;
      url += part;
    }
    send(url);
    api.lastRequest = url;
    return url;
  }

  var api = {
    rules: { isAnonymous: isAnonymous, enforce: enforce },
    lastRequest: null,
    anonymous: function () { return anonymousNow(); },
    /* Event request: ct=<event> and ck<N>/other parameters, e.g. track("buy", {ck1: "red"}). */
    track: function (event, params) {
      var extra = [["ct", String(event)]];
      for (var key in params || {}) {
        if (Object.prototype.hasOwnProperty.call(params, key)) extra.push([key, String(params[key])]);
      }
      return request(extra);
    },
    /* Logout (as Fullstory's anonymize()): the server gives this browser a new everID and
     * session, or a new temporary session. Events tracked before the call keep the old identity,
     * events tracked after it wait for the new one. Returns a Promise. */
    anonymize: function () {
      if (!w.fetch) return null;
      var held = waiting || [];
      waiting = held;
      function release() {
        if (waiting !== held) return;
        waiting = null;
        for (var i = 0; i < held.length; i++) request(held[i]);
      }
      return w.fetch(config.anonymizeUrl, {
        method: "POST", credentials: "same-origin", keepalive: true
      }).then(function (r) { release(); return r.ok; },
        function () { release(); return false; });
    },
    optout: {
      /* The Smart Pixel's semantics: a number of minutes, anything else the default, 0 a
       * session cookie; callback() called at once. */
      setAnonymousCookie: function (minutes, callback) {
        var ui = config.userIdentification;
        writeChoice(ui.anonymousCookieName, minutes);
        recordChoice();
        if (typeof callback === "function") callback();
      },
      deleteAnonymousCookie: function () {
        d.cookie = config.userIdentification.anonymousCookieName +
          "=; path=/; max-age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT" + cookieAttributes();
        recordChoice();
      },
      getAnonymousCookie: function () {
        return !!readCookie(config.userIdentification.anonymousCookieName);
      },
      /* The full tracking opt-out, as the Smart Pixel writes it and tells its track server. */
      setTrackingOptOut: function (minutes) {
        var m = writeChoice(config.optOutName, minutes);
        optoutRequest(Math.floor(m / 1440));
      },
      deleteTrackingOptOut: function () {
        d.cookie = config.optOutName +
          "=; path=/; max-age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT" + cookieAttributes();
        optoutRequest(-2);
      },
      getTrackingOptOut: function () {
        return !!readCookie(config.optOutName);
      }
    }
  };

  function writeChoice(name, minutes) {
    var m = typeof minutes === "number" && minutes >= 0 ? minutes : config.anonymousCookieMinutes;
    var lifetime = m === 0 ? "" : "; max-age=" + Math.round(m * 60) +
      "; expires=" + new Date(Date.now() + m * 60000).toUTCString();
    d.cookie = name + "=1; path=/" + lifetime + cookieAttributes();
    return m;
  }

  /* A consent receipt for the choice just written: the server records the cookie this request
   * carries (not anything said here) and sets the receipt cookie. */
  function recordChoice() {
    if (!w.fetch || !config || !config.receiptUrl) return;
    w.fetch(config.receiptUrl, {
      method: "POST", credentials: "same-origin", keepalive: true
    }).catch(function () {});
  }

  function optoutRequest(days) {
    var img = new Image(1, 1);
    img.src = config.endpoint.replace(/\/wt$/, "/optout") + "?duration=" + days;
  }

  function cookieAttributes() {
    var attrs = "; samesite=lax";
    if (config.cookieDomain) attrs += "; domain=" + config.cookieDomain;
    if (w.location.protocol === "https:") attrs += "; secure";
    return attrs;
  }

  w.pixelMiddleware = api;
  /* A page written for Mapp's Smart Pixel (wtSmart.utils.optout.*) works unchanged when Mapp's
   * own pixel is not on the page; when it is, it keeps its own. */
  if (!w.wtSmart) {
    var o = api.optout;
    w.wtSmart = { utils: { optout: {
      setAnonymousCookie: o.setAnonymousCookie, deleteAnonymousCookie: o.deleteAnonymousCookie,
      getAnonymousCookie: o.getAnonymousCookie, setTrackingOptOut: o.setTrackingOptOut,
      deleteTrackingOptOut: o.deleteTrackingOptOut, getTrackingOptOut: o.getTrackingOptOut,
      set: o.setTrackingOptOut, get: o.getTrackingOptOut
    } } };
  }
  if (config && config.pageRequest) request();
})(window, document);
