// The console playground: builds the chosen operation's request body, sends it to
// /console/playground/{operation}/{model} (which runs it through the API's own pipeline), and
// shows the answer as it streams, decoding the AWS event-stream frames the API sends.
"use strict";
(() => {
  const $ = (s) => document.querySelector(s);
  const form = $("#pg");
  if (!form) return;
  const csrf = form.dataset.csrf;
  let history = []; // Converse messages of the chat so far

  for (const id of ["temperature", "top_p"]) {
    $("#" + id).addEventListener("input", () => { $("#" + id + "-v").textContent = $("#" + id).value; });
  }
  const mode = () => form.querySelector("input[name=mode]:checked").value;
  const syncMode = () => { $("#system-box").hidden = mode() !== "chat"; };
  form.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => { syncMode(); clear(); }));
  syncMode();

  function model() {
    const o = $("#model").selectedOptions[0];
    return { id: o.value, format: o.dataset.format, streaming: o.dataset.streaming === "true",
             inPrice: Number(o.dataset.in), outPrice: Number(o.dataset.out) };
  }
  function params() {
    return {
      maxTokens: Math.max(1, parseInt($("#max_tokens").value, 10) || 200),
      temperature: Number($("#temperature").value),
      topP: Number($("#top_p").value),
      stop: $("#stop").value.split("\n").map((s) => s.trim()).filter(Boolean),
    };
  }

  // The same chat request as client code: boto3's Converse, or Bedrock's OpenAI and
  // Anthropic paths with their own SDKs (a Bedrock API key as the SDK's api_key).
  function snippet(lang) {
    const m = model(), p = params();
    const system = $("#system").value.trim();
    const prompt = $("#prompt").value || "Hello";
    const q = (v) => JSON.stringify(v);
    const stop = p.stop.length ? p.stop : null;
    if (lang === "openai") {
      const messages = (system ? `{"role": "system", "content": ${q(system)}}, ` : "") +
        `{"role": "user", "content": ${q(prompt)}}`;
      return `from openai import OpenAI\n\n` +
        `client = OpenAI(base_url=${q(location.origin + "/openai/v1")}, api_key=BEDROCK_API_KEY)\n` +
        `r = client.chat.completions.create(\n    model=${q(m.id)},\n    messages=[${messages}],\n` +
        `    max_completion_tokens=${p.maxTokens}, temperature=${p.temperature}, top_p=${p.topP},` +
        (stop ? `\n    stop=${q(stop)},` : "") + `\n)\nprint(r.choices[0].message.content)\n`;
    }
    if (lang === "anthropic") {
      if (m.format !== "anthropic-messages") return "# The /anthropic path serves Claude Messages models only.\n";
      return `from anthropic import Anthropic\n\n` +
        `client = Anthropic(base_url=${q(location.origin + "/anthropic")}, api_key=BEDROCK_API_KEY)\n` +
        `m = client.messages.create(\n    model=${q(m.id)}, max_tokens=${p.maxTokens},\n` +
        (system ? `    system=${q(system)},\n` : "") +
        `    messages=[{"role": "user", "content": ${q(prompt)}}],\n` +
        (stop ? `    stop_sequences=${q(stop)},\n` : "") +
        `    extra_body={"temperature": ${p.temperature}, "top_p": ${p.topP}},\n)\nprint(m.content[0].text)\n`;
    }
    return `import boto3\n\n` +
      `client = boto3.client("bedrock-runtime", endpoint_url=${q(location.origin)})\n` +
      `r = client.converse(\n    modelId=${q(m.id)},\n` +
      (system ? `    system=[{"text": ${q(system)}}],\n` : "") +
      `    messages=[{"role": "user", "content": [{"text": ${q(prompt)}}]}],\n` +
      `    inferenceConfig={"maxTokens": ${p.maxTokens}, "temperature": ${p.temperature}, "topP": ${p.topP}` +
      (stop ? `, "stopSequences": ${q(stop)}` : "") + `},\n)\nprint(r["output"]["message"]["content"][0]["text"])\n`;
  }
  const showCode = () => { $("#code-text").textContent = snippet($("#code-lang").value); };
  form.addEventListener("input", showCode);
  form.addEventListener("change", showCode);
  showCode();

  // A model's own InvokeModel body for one prompt (text mode), by body format.
  function textBody(format, prompt, p) {
    switch (format) {
      case "anthropic-text":
        return { prompt: `\n\nHuman: ${prompt}\n\nAssistant:`, max_tokens_to_sample: p.maxTokens,
                 temperature: p.temperature, top_p: p.topP, stop_sequences: p.stop };
      case "anthropic-messages":
        return { anthropic_version: "bedrock-2023-05-31", max_tokens: p.maxTokens,
                 messages: [{ role: "user", content: prompt }], temperature: p.temperature,
                 top_p: p.topP, stop_sequences: p.stop };
      case "titan-text":
        return { inputText: prompt, textGenerationConfig: { maxTokenCount: p.maxTokens,
                 temperature: p.temperature, topP: p.topP, stopSequences: p.stop } };
      case "nova":
        return { schemaVersion: "messages-v1", messages: [{ role: "user", content: [{ text: prompt }] }],
                 inferenceConfig: { max_new_tokens: p.maxTokens, temperature: p.temperature,
                 top_p: p.topP, stopSequences: p.stop } };
      case "meta-llama":
        return { prompt, max_gen_len: p.maxTokens, temperature: p.temperature, top_p: p.topP };
      case "mistral":
        return { prompt: `<s>[INST] ${prompt} [/INST]`, max_tokens: p.maxTokens,
                 temperature: p.temperature, top_p: p.topP, stop: p.stop };
      case "cohere-command":
        return { prompt, max_tokens: p.maxTokens, temperature: p.temperature, p: p.topP,
                 stop_sequences: p.stop };
      case "ai21-j2":
        return { prompt, maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP,
                 stopSequences: p.stop };
      default:
        throw new Error(`The playground has no text mode for ${format} models.`);
    }
  }

  // The text in one model chunk (stream) or whole answer (invoke), whatever its family.
  function textOf(o) {
    if (o.type === "content_block_delta") return o.delta.text || "";
    if (o.content && o.content[0]) return o.content[0].text || "";
    if (o.contentBlockDelta) return o.contentBlockDelta.delta.text || "";
    if (o.output && o.output.message) return o.output.message.content.map((c) => c.text || "").join("");
    if (o.results) return o.results.map((r) => r.outputText).join("");
    if (o.outputs) return o.outputs.map((r) => r.text).join("");
    if (o.generations) return o.generations.map((g) => g.text).join("");
    if (o.completions) return o.completions.map((c) => c.data.text).join("");
    for (const k of ["completion", "outputText", "generation", "text"]) {
      if (typeof o[k] === "string") return o[k];
    }
    return "";
  }

  // AWS event-stream framing: total length (4), headers length (4), prelude CRC (4), headers,
  // payload, message CRC (4); all big-endian. The CRCs were checked by TCP and written by the
  // server's codec; they are not checked again here.
  function parseHeaders(bytes, start, end) {
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const out = {};
    const dec = new TextDecoder();
    let i = start;
    while (i < end) {
      const nameLen = bytes[i]; i += 1;
      const name = dec.decode(bytes.subarray(i, i + nameLen)); i += nameLen;
      const type = bytes[i]; i += 1;
      const fixed = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };
      if (type === 6 || type === 7) {
        const len = view.getUint16(i); i += 2;
        out[name] = dec.decode(bytes.subarray(i, i + len)); i += len;
      } else if (type in fixed) {
        out[name] = type === 0; i += fixed[type];
      } else {
        throw new Error("bad event-stream header");
      }
    }
    return out;
  }
  async function* events(response) {
    const reader = response.body.getReader();
    let buf = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf); joined.set(value, buf.length); buf = joined;
      while (buf.length >= 12) {
        const view = new DataView(buf.buffer, buf.byteOffset);
        const total = view.getUint32(0), headersLen = view.getUint32(4);
        if (buf.length < total) break;
        const headers = parseHeaders(buf, 12, 12 + headersLen);
        const payload = new TextDecoder().decode(buf.subarray(12 + headersLen, total - 4));
        buf = buf.slice(total);
        yield { headers, body: payload ? JSON.parse(payload) : {} };
      }
    }
  }
  function b64text(b64) {
    const bin = atob(b64);
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  }

  function turn(who, text) {
    const div = document.createElement("div");
    div.className = "turn " + who;
    div.innerHTML = '<div class="who"></div><div class="text"></div><div class="meta"></div>';
    div.querySelector(".who").textContent = who === "user" ? "You" : "Model";
    div.querySelector(".text").textContent = text;
    $("#transcript").appendChild(div);
    return div;
  }
  function clear() { history = []; $("#transcript").textContent = ""; showError(""); }
  function showError(msg) { const e = $("#error"); e.textContent = msg; e.hidden = !msg; }

  function cost(m, input, output) {
    // Prices are per 1,000 tokens; shown to the micro-dollar.
    return "$" + ((input * m.inPrice + output * m.outPrice) / 1000).toFixed(6);
  }

  async function send(operation, m, body) {
    return fetch(`/console/playground/${operation}/${encodeURIComponent(m.id)}`, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
    });
  }

  async function run() {
    const prompt = $("#prompt").value.trim();
    if (!prompt) return;
    showError("");
    const m = model(), p = params(), chat = mode() === "chat";
    $("#run").disabled = true;
    const started = performance.now();
    turn("user", prompt);
    const answer = turn("assistant", "");
    const out = answer.querySelector(".text");
    let usage = null, latency = null, stopReason = "";
    try {
      let operation, body;
      if (chat) {
        const messages = history.concat([{ role: "user", content: [{ text: prompt }] }]);
        body = { messages, inferenceConfig: { maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP } };
        if (p.stop.length) body.inferenceConfig.stopSequences = p.stop;
        const system = $("#system").value.trim();
        if (system) body.system = [{ text: system }];
        operation = m.streaming ? "converse-stream" : "converse";
      } else {
        body = textBody(m.format, prompt, p);
        operation = m.streaming ? "invoke-with-response-stream" : "invoke";
      }
      const response = await send(operation, m, body);
      if (!response.ok) {
        const err = await response.json().catch(() => ({}));
        throw new Error(`${response.headers.get("x-amzn-errortype") || response.status}: ${err.message || err.Message || response.statusText}`.replace(/:http.*?:/, ":"));
      }
      if (!m.streaming) {
        const o = await response.json();
        out.textContent = textOf(o);
        if (o.usage && o.usage.inputTokens !== undefined) {
          usage = { input: o.usage.inputTokens, output: o.usage.outputTokens };
          latency = o.metrics && o.metrics.latencyMs;
        } else {
          const h = (k) => Number(response.headers.get(k));
          usage = { input: h("x-amzn-bedrock-input-token-count"), output: h("x-amzn-bedrock-output-token-count") };
          latency = h("x-amzn-bedrock-invocation-latency");
        }
      } else {
        for await (const ev of events(response)) {
          const kind = ev.headers[":event-type"];
          if (ev.headers[":message-type"] === "exception") {
            throw new Error(`${ev.headers[":exception-type"]}: ${ev.body.message || ev.body.Message}`);
          }
          if (chat) {
            if (kind === "contentBlockDelta") out.textContent += ev.body.delta.text || "";
            else if (kind === "messageStop") stopReason = ev.body.stopReason;
            else if (kind === "metadata") {
              usage = { input: ev.body.usage.inputTokens, output: ev.body.usage.outputTokens };
              latency = ev.body.metrics.latencyMs;
            }
          } else if (kind === "chunk") {
            const o = JSON.parse(b64text(ev.body.bytes));
            out.textContent += textOf(o);
            const metrics = o["amazon-bedrock-invocationMetrics"];
            if (metrics) {
              usage = { input: metrics.inputTokenCount, output: metrics.outputTokenCount };
              latency = metrics.invocationLatency;
            }
          }
        }
      }
      if (chat) {
        history.push({ role: "user", content: [{ text: prompt }] });
        history.push({ role: "assistant", content: [{ text: out.textContent }] });
      }
      $("#prompt").value = "";
    } catch (e) {
      showError(e.message);
      answer.remove();
    } finally {
      $("#run").disabled = false;
    }
    if (usage) {
      const ms = latency ?? Math.round(performance.now() - started);
      answer.querySelector(".meta").textContent =
        `${usage.input} input tokens · ${usage.output} output tokens · ${ms} ms · ${cost(m, usage.input, usage.output)}` +
        (stopReason ? ` · ${stopReason}` : "");
    }
  }

  $("#run").addEventListener("click", run);
  $("#clear").addEventListener("click", clear);
  $("#prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
})();
