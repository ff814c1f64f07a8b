// The Deconvnet tab of TensorBoard. Plain ES module: TensorBoard loads it in the tab's frame and calls
// render(). Every request goes to this plugin's own routes (relative URLs); nothing comes from elsewhere.

const state = {runs: [], run: null, split: null, layer: null, channel: null, probe: 0, unit: null,
               method: 'fourier'};

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function query(parameters) {
  return new URLSearchParams(parameters).toString();
}

async function getJson(route, parameters = {}) {
  const response = await fetch(`./${route}?${query(parameters)}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${route}: HTTP ${response.status}`);
  return body;
}

// A panel shows the reply to its newest request only: switching run, layer or channel while an older
// request is in flight must not let that older reply paint the panel afterwards.
class Stale extends Error {}
const newest = {};

async function panelJson(panel, route, parameters) {
  const token = {};
  newest[panel] = token;
  try {
    return await getJson(route, parameters);
  } finally {
    if (newest[panel] !== token) throw new Stale(panel);  // overrides the reply, or its error
  }
}

function message(container, text, isError = false) {
  container.replaceChildren(element('p', {class: isError ? 'message error' : 'message'}, text));
}

function select(id, options, value, onchange) {
  const node = element('select', {id, onchange: () => onchange(node.value)});
  for (const [optionValue, label] of options) {
    const option = element('option', {value: optionValue}, label);
    if (String(optionValue) === String(value)) option.selected = true;
    node.append(option);
  }
  return node;
}

function currentRun() {
  return state.runs.find((run) => run.name === state.run);
}

function className(run, label) {
  return label >= 0 && label < run.class_names.length ? run.class_names[label] : String(label);
}

// 0. Your own image: upload it (file picker or drop), see its predictions, every channel of a layer lit up
// for it, and, for the channel you click (or reach with the arrow keys), its projections, its top-9 where
// explored, its optimized image and the image's Grad-CAM.

const live = {image: null, layer: null, order: 'channel', channel: null, maxima: [], columns: 1, shape: null,
              atlas: null, layers: [], target: ''};

async function uploadFile(file) {
  const container = document.getElementById('live-result');
  message(container, `Uploading ${file.name}...`);
  let body;
  try {
    const response = await fetch(`./image?${query({run: state.run})}`, {
      method: 'POST', body: file,
      headers: {'Content-Type': file.type || 'application/octet-stream', 'X-XSRF-Protected': '1'}});
    body = await response.json();
    if (!response.ok) throw new Error(body.error || `image: HTTP ${response.status}`);
  } catch (error) {
    message(container, error.message, true);
    return;
  }
  await showImage(body, file.name);
}

// An image of the run's split (a reference run's data, or the data a Keras model was explored on), by id or
// among the first of a class.
async function pickSplitImage(image) {
  const container = document.getElementById('live-result');
  message(container, `Loading ${image}...`);
  try {
    await showImage(await getJson('image', {run: state.run, image}), image);
  } catch (error) {
    message(container, error.message, true);
  }
}

async function listClass(split, label) {
  const list = document.getElementById('split-ids');
  try {
    const found = await getJson('split', {run: state.run, split, class: label, limit: 12});
    list.replaceChildren(...found.ids.map((id) => element('button', {class: 'split-id',
        onclick: () => pickSplitImage(`${split}:${id}`)}, `#${id}`)));
  } catch (error) {
    message(list, error.message, true);
  }
}

async function showImage(body, name) {
  const container = document.getElementById('live-result');
  live.image = body.image;
  live.channel = null;
  const predictions = element('ol', {id: 'predictions'}, ...body.predictions.map((p) =>
      element('li', {}, `${p.name}: ${(100 * p.probability).toFixed(1)}%`)));
  if (!live.layers.length) {
    try {
      live.layers = (await getJson('model_layers', {run: state.run})).layers;
    } catch (error) {
      message(container, error.message, true);
      return;
    }
  }
  const names = live.layers.map((l) => l.name);
  live.layer = names.includes(live.layer) ? live.layer : names[0];
  container.replaceChildren(
      element('div', {class: 'row'},
          element('div', {class: 'figure'},
              element('img', {class: 'pixels', id: 'live-picture', src: body.picture, alt: name}),
              element('div', {class: 'caption', id: 'live-preprocess'}, `${name}: ${body.preprocess}`)),
          element('div', {}, element('div', {class: 'caption'}, 'Predictions'), predictions)),
      element('div', {class: 'controls'},
          element('label', {}, 'Layer '),
          select('live-layer', live.layers.map((l) => [l.name, `${l.name} (${l.height}×${l.width}×${l.channels})`]),
                 live.layer, (value) => { live.layer = value; live.channel = null; renderLiveLayer(); }),
          element('label', {}, 'Order '),
          select('live-order', [['channel', 'channel order'], ['strength', 'by strength']], live.order,
                 (value) => { live.order = value; drawLiveTiles(); })),
      element('div', {id: 'live-layer-info', class: 'message'}),
      element('div', {id: 'live-tiles', class: 'live-tiles', tabindex: 0}),
      element('div', {id: 'live-channel', class: 'row'}));
  await renderLiveLayer();
}

async function renderLiveLayer() {
  const info = document.getElementById('live-layer-info');
  info.textContent = `Lighting up ${live.layer}...`;
  let layer;
  try {
    layer = await panelJson('live-layer', 'activations', {run: state.run, image: live.image, layer: live.layer});
  } catch (error) {
    if (error instanceof Stale) return;
    message(info, error.message, true);
    return;
  }
  Object.assign(live, {maxima: layer.maxima, columns: layer.columns, shape: layer.shape, atlas: layer.atlas});
  const [height, width, channels] = layer.shape;
  info.textContent = `${live.layer}: ${height}×${width}×${channels}, one colour scale for the layer ` +
      `(strongest ${Math.max(...layer.maxima).toFixed(2)}). Click a channel, or move with the arrow keys.`;
  drawLiveTiles();
}

function liveOrder() {
  const channels = [...live.maxima.keys()];
  return live.order === 'strength' ? channels.sort((a, b) => live.maxima[b] - live.maxima[a]) : channels;
}

function drawLiveTiles() {
  const grid = document.getElementById('live-tiles');
  if (!grid || !live.shape) return;
  const [height, width, channels] = live.shape;
  const side = channels > 512 ? 20 : channels > 128 ? 32 : 48;  // thousands of tiles stay one screen
  const scale = side / Math.max(height, width);
  const rows = Math.ceil(channels / live.columns);
  const tiles = liveOrder().map((channel) => {
    const row = Math.floor(channel / live.columns), column = channel % live.columns;
    return element('div', {
      class: 'live-tile' + (channel === live.channel ? ' selected' : ''), 'data-channel': channel,
      title: `channel ${channel}: max ${live.maxima[channel].toFixed(3)} (${live.layer} ${height}×${width}×${channels})`,
      style: `width: ${width * scale}px; height: ${height * scale}px; background-image: url(${live.atlas}); ` +
             `background-size: ${live.columns * width * scale}px ${rows * height * scale}px; ` +
             `background-position: -${column * width * scale}px -${row * height * scale}px`,
      onclick: () => selectLiveChannel(channel),
    });
  });
  grid.replaceChildren(...tiles);
}

function moveLiveSelection(key) {
  if (live.channel === null || !live.shape) return false;
  const order = liveOrder();
  const perRow = Math.max(1, Math.floor(document.getElementById('live-tiles').clientWidth /
                                        (document.querySelector('.live-tile').offsetWidth + 2)));
  const step = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow}[key];
  if (step === undefined) return false;
  const at = Math.min(order.length - 1, Math.max(0, order.indexOf(live.channel) + step));
  selectLiveChannel(order[at]);
  return true;
}

async function selectLiveChannel(channel) {
  live.channel = channel;
  for (const tile of document.querySelectorAll('.live-tile')) {
    tile.classList.toggle('selected', Number(tile.dataset.channel) === channel);
  }
  const output = document.getElementById('live-channel');
  message(output, `Projecting channel ${channel}...`);
  const base = {run: state.run, image: live.image, layer: live.layer, channel};
  let whole, guided, unit;
  try {
    [whole, guided] = await Promise.all([panelJson('live-deconvnet', 'project', {...base, mode: 'deconvnet'}),
                                         panelJson('live-guided', 'project', {...base, mode: 'guided'})]);
    unit = await panelJson('live-unit', 'project',
                           {...base, mode: 'deconvnet', row: whole.argmax[0], col: whole.argmax[1]});
  } catch (error) {
    if (error instanceof Stale) return;
    message(output, error.message, true);
    return;
  }
  const figure = (id, src, caption) => element('div', {class: 'figure'},
      element('img', {class: 'pixels', id, src, alt: caption}), element('div', {class: 'caption'}, caption));
  const featureMap = figure('live-feature-map', whole.feature_map,
                            `channel ${channel}: max ${whole.max_activation.toFixed(2)}; click a unit`);
  featureMap.querySelector('img').classList.add('feature-map');
  featureMap.querySelector('img').addEventListener('click', async (click) => {
    const img = click.target, [height, width] = whole.map_shape;
    const row = Math.min(height - 1, Math.floor(click.offsetY / img.clientHeight * height));
    const col = Math.min(width - 1, Math.floor(click.offsetX / img.clientWidth * width));
    try {
      const chosen = await panelJson('live-unit', 'project', {...base, mode: 'deconvnet', row, col});
      document.getElementById('live-unit-img').src = chosen.projection;
      document.getElementById('live-unit-img').nextSibling.textContent = `deconvnet, unit (${row}, ${col})`;
    } catch (error) {
      if (!(error instanceof Stale)) message(output, error.message, true);
    }
  });
  output.replaceChildren(featureMap,
      figure('live-deconvnet-img', whole.projection, `deconvnet, whole map, ${whole.milliseconds} ms`),
      figure('live-guided-img', guided.projection, `guided backprop, whole map, ${guided.milliseconds} ms`),
      figure('live-unit-img', unit.projection, `deconvnet, strongest unit (${unit.unit[0]}, ${unit.unit[1]})`),
      element('div', {id: 'live-extras', class: 'row'}));
  renderLiveExtras(channel);
}

async function renderLiveExtras(channel) {
  const extras = document.getElementById('live-extras');
  const run = currentRun();
  const parts = [];
  const explored = Object.entries(run.splits).find(([, split]) => split.layers.includes(live.layer));
  if (explored) {
    const [split] = explored;
    const tiles = [...Array(9).keys()].map((rank) => element('img', {class: 'pixels live-top9', alt: `top ${rank + 1}`,
        src: `./tile.png?${query({run: state.run, split, layer: live.layer, channel, rank})}`}));
    parts.push(element('div', {class: 'figure wide'}, element('div', {class: 'live-top9-grid'}, ...tiles),
                       element('div', {class: 'caption'}, `top-9 of ${split} (explorer)`)));
  } else {
    parts.push(element('p', {class: 'message'}, `${live.layer} is not explored: no top-9.`));
  }
  extras.replaceChildren(...parts);
  const requests = [
    getJson('optimized', {run: state.run, layer: live.layer, channel, ...(explored ? {split: explored[0]} : {})})
        .then((r) => element('div', {class: 'figure'}, element('img', {class: 'pixels', id: 'live-optimized-img',
            src: r.image, alt: 'optimized'}), element('div', {class: 'caption'},
            `optimized image (${r.source}, ${r.seconds} s)`))),
    getJson('attribution', {run: state.run, image: live.image, method: 'gradcam', top: 1,
                            ...(live.target !== '' ? {target: live.target} : {})})
        .then((r) => element('div', {class: 'row'}, ...r.classes.map((entry, i) => element('div', {class: 'figure'},
            element('img', {class: 'pixels', id: i ? 'live-gradcam-target-img' : 'live-gradcam-img',
                            src: entry.map, alt: `Grad-CAM ${entry.name}`}),
            element('div', {class: 'caption'}, `Grad-CAM of ${entry.name} (p ${entry.probability.toFixed(3)})`))),
            element('div', {class: 'controls'}, element('label', {}, 'and of '),
                select('live-target', [['', '(a class)'], ...run.class_names.map((n, j) => [j, n])], live.target,
                       (value) => { live.target = value; renderLiveExtras(channel); })))),
  ];
  for (const request of requests) {
    request.then((node) => { if (live.channel === channel) extras.append(node); })
        .catch((error) => { if (live.channel === channel) extras.append(element('p', {class: 'message error'},
            error.message)); });
  }
}

function renderUpload() {
  const container = document.getElementById('upload');
  const input = element('input', {id: 'upload-input', type: 'file', accept: 'image/*'});
  input.addEventListener('change', () => input.files.length && uploadFile(input.files[0]));
  const zone = element('div', {id: 'drop-zone', class: 'drop-zone'},
      'Drop an image here, or ', input);
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    if (event.dataTransfer.files.length) uploadFile(event.dataTransfer.files[0]);
  });
  live.layers = [];
  live.image = null;
  const run = currentRun();
  const parts = [zone];
  if (run.data) {  // the tab knows the run's data (its trainer's, or the explorer's source): pick one of its images
    const idInput = element('input', {id: 'split-id', type: 'number', min: 0, value: 0, style: 'width: 6em'});
    const splitSelect = select('split-pick', [['test', 'test'], ['train', 'train']], 'test', () => {});
    parts.push(element('div', {class: 'controls'},
        element('label', {}, 'or an image of the split '), splitSelect, idInput,
        element('button', {id: 'split-show', onclick: () => pickSplitImage(`${splitSelect.value}:${idInput.value}`)},
                'Show'),
        element('label', {}, 'or of a class '),
        select('split-class', [['', '(pick)'], ...(run.class_names || []).map((n, i) => [i, n])], '',
               (value) => value !== '' && listClass(splitSelect.value, value)),
        element('span', {id: 'split-ids'})));
  }
  container.replaceChildren(...parts, element('div', {id: 'live-result'}));
}

document.addEventListener('keydown', (event) => {
  if (event.target.tagName === 'INPUT' || event.target.tagName === 'SELECT') return;
  if (moveLiveSelection(event.key)) event.preventDefault();
});

// 1. Run and layer pickers, and the layer's feature maps.

function renderControls() {
  const run = currentRun();
  const splits = Object.keys(run.splits);
  const layers = state.split ? run.splits[state.split].layers : [];
  const controls = document.getElementById('controls');
  controls.replaceChildren(
      element('label', {}, 'Run '),
      select('run', state.runs.map((r) => [r.name, r.name]), state.run, (value) => {
        state.run = value;
        pickDefaults();
        refreshAll();
      }),
      element('label', {}, 'Split '),
      select('split', splits.map((s) => [s, s]), state.split, (value) => {
        state.split = value;
        state.layer = run.splits[value].layers.at(-1);
        refreshAll();
      }),
      element('label', {}, 'Layer '),
      select('layer', layers.map((l) => [l, l]), state.layer, (value) => {
        state.layer = value;
        state.channel = null;
        refreshAll();
      }));
}

function pickDefaults() {
  const run = currentRun();
  const splits = Object.keys(run.splits);
  state.split = splits.includes('test') ? 'test' : (splits[0] || null);
  state.layer = state.split ? run.splits[state.split].layers.at(-1) : null;
  state.channel = null;
  state.probe = 0;
  state.unit = null;
}

async function renderFeatureMaps() {
  const container = document.getElementById('feature-maps');
  if (!state.split) {
    message(container, `No explorer output in ${state.run}: run python -m vizdeconv.explore on it ` +
        'to see its feature maps and their top-9.');
    return;
  }
  message(container, 'Loading feature maps...');
  let layer;
  try {
    layer = await panelJson('feature-maps', 'layer', {run: state.run, split: state.split, layer: state.layer});
  } catch (error) {
    if (error instanceof Stale) return false;
    message(container, error.message, true);
    return;
  }
  const grid = element('div', {class: 'tiles'});
  for (const entry of layer.channels) {
    const source = `./tile.png?${query({run: state.run, split: state.split, layer: state.layer,
                                        channel: entry.channel, rank: 0})}`;
    const tile = element('div', {
      class: 'tile' + (entry.channel === state.channel ? ' selected' : ''),
      'data-channel': entry.channel,
      title: `channel ${entry.channel}: strongest ${entry.value.toFixed(2)} on image ${entry.image_id}`,
      onclick: () => selectChannel(entry.channel),
    }, element('img', {class: 'pixels', src: source, alt: `channel ${entry.channel}`}),
    String(entry.channel));
    grid.append(tile);
  }
  container.replaceChildren(
      element('p', {class: 'message'}, `${layer.channels.length} feature maps of ${state.layer}, ` +
          'each its strongest projection. Click one.'), grid);
}

function selectChannel(channel) {
  state.channel = channel;
  for (const tile of document.querySelectorAll('.tile')) {
    tile.classList.toggle('selected', Number(tile.dataset.channel) === channel);
  }
  const channelInput = document.getElementById('channel');
  const layerInput = document.getElementById('project-layer');
  if (channelInput) channelInput.value = channel;
  if (layerInput && [...layerInput.options].some((o) => o.value === state.layer)) {
    layerInput.value = state.layer;
  }
  state.unit = null;
  renderTop9();
  renderEvolution();
  project();
}

// 2. The selected feature map's top-9.

async function renderTop9() {
  const container = document.getElementById('top9');
  if (state.channel === null || !state.split) {
    message(container, 'Click a feature map to see its top-9.');
    return;
  }
  const run = currentRun();
  let top;
  try {
    top = await panelJson('top9', 'top9', {run: state.run, split: state.split, layer: state.layer,
                                 channel: state.channel});
  } catch (error) {
    if (error instanceof Stale) return false;
    message(container, error.message, true);
    return;
  }
  const cards = element('div', {class: 'cards'});
  for (const entry of top.entries) {
    const parameters = {run: state.run, split: state.split, layer: state.layer, channel: state.channel,
                        rank: entry.rank};
    cards.append(element('div', {class: 'card', 'data-rank': entry.rank},
        element('img', {class: 'pixels', alt: 'projection',
                        src: `./tile.png?${query({...parameters, what: 'projection'})}`}),
        element('img', {class: 'pixels', alt: 'patch',
                        src: `./tile.png?${query({...parameters, what: 'patch'})}`}),
        element('div', {class: 'caption'},
                `${className(run, entry.label)} · ${entry.value.toFixed(2)} · #${entry.image_id}`)));
  }
  const optimized = element('div', {class: 'card optimized', id: 'optimized'},
                            element('div', {class: 'caption'}, 'Optimizing an image for this feature map...'));
  cards.prepend(optimized);
  const method = select('optimize-method', [['fourier', 'Fourier (Olah et al.)'],
                                            ['pixel', 'pixel (Yosinski et al.)']], state.method, (value) => {
    state.method = value;
    renderTop9();
  });
  container.replaceChildren(
      element('p', {class: 'message'}, `${state.layer} channel ${state.channel}: first the image optimized ` +
          `to excite it, then its ${top.entries.length} strongest activations over the split; projection ` +
          'beside the receptive-field patch (class · activation · image id).'),
      element('div', {class: 'controls'}, element('label', {}, 'Optimized image '), method), cards);
  return renderOptimized(optimized);
}

// The image optimized to excite the selected feature map, stored or computed on demand by the server.
async function renderOptimized(card) {
  let result;
  try {
    result = await panelJson('optimized', 'optimized', {run: state.run, split: state.split, layer: state.layer,
                                                        channel: state.channel, method: state.method});
  } catch (error) {
    if (error instanceof Stale) return false;
    card.replaceChildren(element('div', {class: 'caption error'}, error.message));
    return;
  }
  const versus = result.top1 === null ? '' : ` vs top-1 ${result.top1.toFixed(2)}`;
  const how = result.cached ? result.source : `${result.source}, ${result.seconds} s`;
  card.replaceChildren(
      element('img', {class: 'pixels', id: 'optimized-img', src: result.image, alt: 'optimized image'}),
      element('div', {class: 'caption', id: 'optimized-info'},
              `${result.method}: ${result.activation.toFixed(2)}${versus}`),
      element('div', {class: 'caption'}, how));
}

// 3. Evolution over the kept checkpoints.

async function renderEvolution() {
  const container = document.getElementById('evolution');
  if (state.channel === null) {
    message(container, 'Click a feature map to see how it evolved during training.');
    return;
  }
  let evolution;
  try {
    evolution = await panelJson('evolution', 'evolution', {run: state.run, layer: state.layer, channel: state.channel});
  } catch (error) {
    if (error instanceof Stale) return false;
    message(container, error.message);
    return;
  }
  const image = element('img', {id: 'evolution-img', class: 'pixels', alt: 'evolution'});
  const label = element('span', {id: 'evolution-step'});
  const slider = element('input', {id: 'step', type: 'range', min: 0, max: evolution.steps.length - 1,
                                   value: evolution.steps.length - 1});
  const show = () => {
    const index = Number(slider.value);
    label.textContent = `step ${evolution.steps[index]}`;
    image.src = `./evolution.png?${query({run: state.run, layer: state.layer, channel: state.channel,
                                          index})}`;
  };
  slider.addEventListener('input', show);
  show();
  container.replaceChildren(
      element('div', {class: 'controls'}, element('label', {}, 'Kept checkpoint '), slider, label),
      element('div', {class: 'figure'}, image));
}

// 4. Probe images and projections computed on demand.

async function renderProbes() {
  const container = document.getElementById('probes');
  const run = currentRun();
  let layers = [];
  try {
    layers = (await panelJson('probes', 'model_layers', {run: state.run})).layers;
  } catch (error) {
    if (error instanceof Stale) return false;
    message(container, error.message, true);
    return false;
  }
  newest.projection = {};  // a projection still in flight belongs to the panel being replaced
  const strip = element('div', {class: 'probes'});
  for (const probe of run.probes) {
    const thumbnail = element('img', {
      id: `probe-${probe.index}`, class: 'pixels' + (probe.index === state.probe ? ' selected' : ''),
      src: `./probe.png?${query({run: state.run, image: probe.index})}`,
      title: `image ${probe.image_id} (${className(run, probe.label)})`,
    });
    thumbnail.addEventListener('click', () => {
      state.probe = probe.index;
      state.unit = null;
      for (const img of strip.children) img.classList.toggle('selected', img === thumbnail);
      project();
      renderAttribution();
    });
    strip.append(thumbnail);
  }
  const layerNames = layers.map((l) => l.name);
  const projectLayer = layerNames.includes(state.layer) ? state.layer : layerNames.at(-1);
  const controls = element('div', {class: 'controls'},
      element('label', {}, 'Layer '),
      select('project-layer', layers.map((l) => [l.name, `${l.name} (${l.channels})`]), projectLayer,
             () => { state.unit = null; project(); }),
      element('label', {}, 'Channel '),
      element('input', {id: 'channel', type: 'number', min: 0, value: state.channel ?? 0,
                        style: 'width: 5em'}),
      element('label', {}, 'Mode '),
      select('mode', [['deconvnet', 'deconvnet'], ['guided', 'guided backprop'],
                      ['bias_subtract', 'bias_subtract']], 'deconvnet', () => project()),
      element('button', {id: 'project-button', onclick: () => { state.unit = null; project(); }},
              'Project'));
  container.replaceChildren(strip, controls, element('div', {id: 'projection', class: 'row'}));
  return true;
}

async function project() {
  const output = document.getElementById('projection');
  if (!output) return;
  const run = currentRun();
  const layer = document.getElementById('project-layer').value;
  const channel = document.getElementById('channel').value;
  const parameters = {run: state.run, image: state.probe, layer, channel,
                      mode: document.getElementById('mode').value};
  if (state.unit) Object.assign(parameters, {row: state.unit[0], col: state.unit[1]});
  message(output, 'Projecting...');
  let result;
  try {
    result = await panelJson('projection', 'project', parameters);
  } catch (error) {
    if (error instanceof Stale) return false;
    message(output, error.message, true);
    return;
  }
  const probe = run.probes[state.probe];
  const featureMap = element('img', {class: 'pixels feature-map', id: 'feature-map-img',
                                     src: result.feature_map, alt: 'feature map'});
  featureMap.addEventListener('click', (click) => {
    const [height, width] = result.map_shape;
    const row = Math.min(height - 1, Math.floor(click.offsetY / featureMap.clientHeight * height));
    const col = Math.min(width - 1, Math.floor(click.offsetX / featureMap.clientWidth * width));
    state.unit = [row, col];
    project();
  });
  const what = result.unit ? `unit (${result.unit[0]}, ${result.unit[1]})` : 'whole feature map';
  const figures = [
    element('div', {class: 'figure'}, element('img', {class: 'pixels', src: `./probe.png?${query(
        {run: state.run, image: state.probe})}`, alt: 'image'}),
            element('div', {class: 'caption'}, `image ${probe.image_id} (${className(run, probe.label)})`)),
    element('div', {class: 'figure'}, featureMap,
            element('div', {class: 'caption'}, `${layer} channel ${channel}, max ` +
                `${result.max_activation.toFixed(2)}; click a unit`)),
    element('div', {class: 'figure'}, element('img', {class: 'pixels', id: 'projection-img',
                                                      src: result.projection, alt: 'projection'}),
            element('div', {class: 'caption', id: 'projection-info'},
                    // A Keras model file has no training step: none is named.
                    [parameters.mode, what, result.step == null ? null : `step ${result.step}`,
                     `${result.milliseconds} ms`].filter(Boolean).join(', '))),
  ];
  const occlusion = run.analyses.occlusion[probe.image_id];
  if (occlusion) {
    figures.push(element('div', {class: 'figure wide'}, element('img', {
      src: `./file?${query({run: state.run, path: occlusion})}`, alt: 'occlusion'}),
    element('div', {class: 'caption'}, 'occlusion (analyze occlusion)')));
  }
  output.replaceChildren(...figures);
}

// Why the model gave the selected probe image its classes: attribution maps of its top classes (and a class
// picked here), computed on demand by the server with the run's current weights.
const ATTRIBUTION_METHODS = [['gradcam', 'Grad-CAM'], ['gradcam++', 'Grad-CAM++'], ['scorecam', 'Score-CAM'],
                             ['guided_gradcam', 'Guided Grad-CAM'], ['saliency', 'Saliency'],
                             ['integrated_gradients', 'Integrated gradients']];

async function renderAttribution() {
  const container = document.getElementById('attribution');
  if (!container) return;
  const run = currentRun();
  let controls = document.getElementById('attribution-controls');
  if (!controls || controls.dataset.run !== state.run) {
    const classes = [['', 'top 3 classes'], ...run.class_names.map((name, i) => [i, `+ ${name}`])];
    controls = element('div', {id: 'attribution-controls', class: 'controls'},
        element('label', {}, 'Method '),
        select('attribution-method', ATTRIBUTION_METHODS, 'gradcam', () => renderAttribution()),
        element('label', {}, 'Class '),
        select('attribution-target', classes, '', () => renderAttribution()));
    controls.dataset.run = state.run;
    container.replaceChildren(controls, element('div', {id: 'attribution-maps', class: 'row'}));
  }
  const output = document.getElementById('attribution-maps');
  const parameters = {run: state.run, image: state.probe,
                      method: document.getElementById('attribution-method').value};
  const target = document.getElementById('attribution-target').value;
  if (target !== '') parameters.target = target;
  message(output, 'Computing...');
  let result;
  try {
    result = await panelJson('attribution', 'attribution', parameters);
  } catch (error) {
    if (error instanceof Stale) return;
    message(output, error.message, true);
    return;
  }
  const figures = result.classes.map((entry) => element('div', {class: 'figure attribution'},
      element('img', {class: 'pixels', src: entry.map, alt: `${result.method} ${entry.name}`}),
      element('div', {class: 'caption'},
              `${entry.name}: p ${entry.probability.toFixed(3)}, logit ${entry.score.toFixed(2)}`)));
  figures.push(element('div', {class: 'caption', id: 'attribution-info'},
      [result.layer ? `layer ${result.layer}` : 'pixels', result.step == null ? null : `step ${result.step}`,
       result.cached ? 'cached' : `${result.milliseconds} ms`].filter(Boolean).join(', ')));
  output.replaceChildren(...figures);
}

// 5. Sanity curves and mode comparisons.

function sanityChart(layer, curve) {
  const width = 320;
  const height = 160;
  const left = 36;
  const bottom = 24;
  const step = (width - left - 40) / Math.max(1, curve.stages.length - 1);
  const x = (i) => left + i * step;
  const y = (v) => 8 + (1 - v) * (height - bottom - 8);
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  const add = (tag, attributes, text, parent = svg) => {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  };
  add('line', {x1: left, y1: y(0), x2: width - 10, y2: y(0), class: 'axis'});
  add('line', {x1: left, y1: y(0), x2: left, y2: y(1), class: 'axis'});
  add('text', {x: 4, y: y(1) + 4}, '1.0');
  add('text', {x: 4, y: y(0) + 4}, '0.0');
  const colours = {spearman: '#1e88e5', ssim: '#f57c00'};
  for (const [key, colour] of Object.entries(colours)) {
    const points = curve[key].map((v, i) => `${x(i)},${y(v)}`).join(' ');
    add('polyline', {points, fill: 'none', stroke: colour, 'stroke-width': 2});
  }
  // Deep networks randomize dozens of stages (MobileNetV2: 37): the axis names as many as fit, first and
  // last always, each by its last path part, and every point names its stage on hover.
  const names = curve.stages.map((stage) => stage.split('/').pop());
  const slot = 80;
  const every = Math.max(1, Math.ceil(names.length / Math.max(1, Math.floor((width - left) / slot))));
  names.forEach((name, i) => {
    const shown = i === 0 || i === names.length - 1 || (i % every === 0 && names.length - 1 - i >= every);
    const label = name.length > 12 ? `${name.slice(0, 11)}…` : name;
    if (shown) add('text', {x: x(i), y: height - 6, class: 'stage', 'text-anchor': 'middle'}, label);
    const point = add('circle', {cx: x(i), cy: y(curve.spearman[i]), r: 3, fill: 'transparent'});
    add('title', {}, `${curve.stages[i]}: Spearman ${curve.spearman[i].toFixed(3)}, SSIM ${curve.ssim[i].toFixed(3)}`,
        point);
  });
  return element('div', {class: 'figure wide'}, svg, element('div', {class: 'caption'},
      `${layer}: Spearman (blue) and SSIM (orange) as layers are randomized from the top`));
}

function renderAnalyses() {
  const container = document.getElementById('analyses');
  const run = currentRun();
  const parts = [];
  for (const [layer, curve] of Object.entries(run.analyses.sanity)) parts.push(sanityChart(layer, curve));
  for (const path of run.analyses.compare) {
    parts.push(element('div', {class: 'figure wide'},
        element('img', {src: `./file?${query({run: state.run, path})}`, alt: path}),
        element('div', {class: 'caption'}, `${path}: image | deconvnet | bias_subtract | guided | gradient`)));
  }
  if (!parts.length) {
    message(container, 'No sanity check or mode comparison yet: run python -m vizdeconv.analyze sanity, ' +
        'or the explorer with --compare --sanity.');
    return;
  }
  container.replaceChildren(element('div', {class: 'row'}, ...parts));
}

function refreshAll() {
  renderControls();
  renderUpload();
  renderFeatureMaps();
  renderTop9();
  renderEvolution();
  renderProbes().then((shown) => { if (shown) { project(); renderAttribution(); } });
  renderAnalyses();
}

// TensorBoard marks its dark theme with class dark-mode on its page's body; the tab's frame is served
// from the same origin, so it can follow that (and the browser's preference where it cannot).
function followTheme() {
  const query = window.matchMedia('(prefers-color-scheme: dark)');
  let parentBody = null;
  try {
    parentBody = window.parent !== window ? window.parent.document.body : null;
  } catch (error) {
    parentBody = null;
  }
  const apply = () => document.documentElement.classList.toggle(
      'dark', parentBody ? parentBody.classList.contains('dark-mode') : query.matches);
  apply();
  if (parentBody) {
    new MutationObserver(apply).observe(parentBody, {attributes: true, attributeFilter: ['class']});
  }
  query.addEventListener('change', apply);
}

export async function render() {
  followTheme();
  document.head.append(element('link', {rel: 'stylesheet', href: './style.css'}));
  const section = (id, title) => element('section', {}, element('h2', {}, title),
                                         element('div', {id}));
  document.body.append(
      element('div', {id: 'controls', class: 'controls'}),
      section('upload', 'Your image'),
      section('feature-maps', 'Feature maps'),
      section('top9', 'Top 9'),
      section('evolution', 'Evolution'),
      section('probes', 'Projection on demand'),
      section('attribution', 'Why this class (attribution of the selected image)'),
      section('analyses', 'Sanity check and modes'));
  try {
    state.runs = (await getJson('runs')).runs;
  } catch (error) {
    message(document.getElementById('controls'), error.message, true);
    return;
  }
  if (!state.runs.length) {
    message(document.getElementById('controls'), 'No vizdeconv run in this logdir.');
    return;
  }
  // The first run with explorer output, where there is most to see.
  state.run = (state.runs.find((run) => Object.keys(run.splits).length) || state.runs[0]).name;
  pickDefaults();
  refreshAll();
}
