// The bulletin library on the page (docs/headend.md): upload, record with the
// microphone, preview, delete, and take one to the broadcast page. No inline
// code: the texts come from the section's data- attributes.
(function () {
  "use strict";
  var sec = document.getElementById("library");
  if (!sec) return;
  var T = sec.dataset, out = document.getElementById("media-result"),
      form = document.getElementById("upload");

  function mmss(s) {
    if (s === null || s === undefined) return "-";
    s = Math.round(s);
    return Math.floor(s / 60) + ":" + ("0" + s % 60).slice(-2);
  }
  function cell(tr, text, label) {
    var td = document.createElement("td");
    td.textContent = text;
    if (label) td.dataset.label = label;
    tr.appendChild(td);
    return td;
  }
  function button(text, data) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    Object.keys(data).forEach(function (k) { b.dataset[k] = data[k]; });
    return b;
  }
  var labels = Array.prototype.map.call(
    document.querySelectorAll("#media thead th"), function (th) { return th.textContent; });
  function load() {
    return fetch("/api/media").then(function (r) { return r.json(); }).then(function (items) {
      var body = document.querySelector("#media tbody");
      body.innerHTML = "";
      items.forEach(function (m) {
        var tr = document.createElement("tr");
        tr.id = "media-" + m.name;
        cell(tr, m.title, labels[0]);
        cell(tr, mmss(m.seconds), labels[1]);
        cell(tr, m.uploader || "-", labels[2]);
        cell(tr, m.at ? m.at.replace("T", " ").slice(0, 16) : "-", labels[3]);
        var a = document.createElement("audio");
        a.controls = true;
        a.preload = "none";
        a.src = "/api/media/" + encodeURIComponent(m.name) + "/audio";
        cell(tr, "", labels[4]).appendChild(a);
        var td = cell(tr, "");
        if (T.operator) {
          td.appendChild(button(T.play, {play: m.name}));
          td.appendChild(document.createTextNode(" "));
          td.appendChild(button(T.del, {del: m.name, title: m.title}));
        }
        body.appendChild(tr);
      });
      return items;
    });
  }
  // a bulletin just made: its row marked and brought into view (on a phone the
  // list is below the forms)
  function shown(name) {
    var tr = document.getElementById("media-" + name);
    if (!tr) return;
    tr.classList.add("new");
    tr.scrollIntoView({block: "center"});
  }
  function upload(data) {
    out.textContent = T.sending;
    return fetch("/api/media", {method: "POST", body: data}).then(function (r) {
      return r.json().then(function (j) {
        out.textContent = r.ok ? j.title + " (" + mmss(j.seconds) + ") ✓" : j.error;
        out.className = r.ok ? "ok" : "error";
        if (r.ok) { form.reset(); load().then(function () { shown(j.name); }); }
      });
    });
  }
  load();
  if (!form) return;  // a viewer: the list and its previews only
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    upload(new FormData(form));
  });
  document.getElementById("media").addEventListener("click", function (e) {
    var d = e.target.dataset;
    if (d.play) {  // to the broadcast page, the bulletin chosen, its zones to choose
      window.location.href = "/broadcast?file=" + encodeURIComponent(d.play) +
        "&lang=" + document.documentElement.lang;
    } else if (d.del && window.confirm(T.confirm.replace("@", d.title))) {
      fetch("/api/media/" + encodeURIComponent(d.del), {method: "DELETE"})
        .then(function (r) { return r.json(); })
        .then(function (j) { out.textContent = j.error || ""; load(); });
    }
  });
  // recording from the microphone (HTTPS, or localhost): saved as a bulletin
  var rec = document.getElementById("rec"), recorder = null;
  if (!(navigator.mediaDevices && window.MediaRecorder)) rec.hidden = true;
  rec.addEventListener("click", function () {
    if (recorder) { recorder.stop(); return; }
    navigator.mediaDevices.getUserMedia({audio: true}).then(function (stream) {
      var parts = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = function (e) { parts.push(e.data); };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (t) { t.stop(); });
        var data = new FormData(), type = recorder.mimeType || "audio/webm";
        recorder = null;
        rec.textContent = T.rec;
        data.append("title", form.title.value.trim() ||
                    new Date().toLocaleString().slice(0, 17));
        data.append("file", new Blob(parts, {type: type}), "recording");
        upload(data);
      };
      recorder.start();
      rec.textContent = T.recstop;
    }).catch(function (err) { out.textContent = String(err); });
  });
  // text read aloud: the text as it will be read, then the bulletin (previewed in the list)
  var tts = document.getElementById("tts"), spoken = document.getElementById("tts-spoken");
  fetch("/api/tts").then(function (r) { return r.json(); }).then(function (e) {
    var voices = e.voices && e.voices.length ? e.voices : [""];
    voices.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v;
      o.textContent = v || e.engine;
      tts.voice.appendChild(o);
    });
  });
  function speak(dry) {
    var body = {text: tts.text.value, title: tts.title.value.trim(),
                voice: tts.voice.value || null, rate: parseInt(tts.rate.value, 10), dry: dry};
    if (!body.text.trim()) { tts.text.focus(); return; }
    if (!dry) out.textContent = T.sending;
    fetch("/api/tts", {method: "POST", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify(body)}).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { out.textContent = j.error || JSON.stringify(j); out.className = "error"; return; }
        spoken.textContent = "« " + j.spoken + " »";
        if (!dry) {
          out.textContent = j.title + " (" + mmss(j.seconds) + ") ✓";
          out.className = "ok";
          load().then(function () { shown(j.name); });
        }
      });
    });
  }
  tts.addEventListener("submit", function (e) { e.preventDefault(); speak(false); });
  document.getElementById("tts-dry").addEventListener("click", function () { speak(true); });
})();
